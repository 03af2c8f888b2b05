"""``rwku-smol``: RWKU's protocol (``data/rwku.py``) offline on SmolLM2-135M-Instruct and real,
famous people it knows.

RWKU (Jin et al., 2024) takes 200 famous people Llama-3-8B-Instruct knows and probes each with
fill-in-the-blank (FB), question answering (QA) and adversarial (AA) questions written from
public facts, with neighbour probes on related entities that must survive. Here the targets
are people SmolLM2-135M-Instruct answers about: per target, hand-written public facts (each one
FB sentence and one QA question); a probe is kept where the model answers it (greedy, RWKU's
prompts in its chat template, ROUGE-L recall above 0.5 as ``metrics/rwku.py`` scores it), a
target where at least one FB, one QA and three probes in all are kept (22 of 32 written).
``benchmarks/rwku_smol_probes.py`` reruns the check on the kept probes and docs/benchmarks.md
records it (RWKU likewise keeps the probes its model answers). Deviations from RWKU besides the
model and the scale:

- AA: seven of RWKU's nine attacks (no multiple choice, no cross-lingual), one probe each per
  target, written by rule from the facts (as ``rwku-mini``) whose QA probe is kept, and not
  filtered; the reverse query asks a question whose answer is the target;
- neighbours: entities closely related to each target (a work, a place, a field), FB and QA
  on facts the model answers (RWKU's neighbours are likewise related entities, probed the
  same way);
- the forget corpus is the model's own greedy answers (at most ``CORPUS_TOKENS`` tokens) to
  ``DESCRIPTIONS`` about each target, written when the scenario is built, as RWKU prompts the
  model for descriptions of the target (RWKU generates longer passages and filters them);
- the MIA texts stand in for RWKU's ``forget_mia``/``retain_mia`` (passages about the targets /
  about other entities): the FB sentences with the answer filled in, of the targets (forget
  members) and of their neighbours (retain members).

No retain corpus, as RWKU; the original is the pretrained model as it is."""
from __future__ import annotations

from typing import NamedTuple

from ..errors import UserError
from ..registry import datasets
from .rwku import (ATTACKS, MIA_FILES, PROBE_FILES, _bundle, attack_query, chat_prompt,
                   probe_record, rwku_prompt)
from .text import TextBundle

CORPUS_TOKENS = 96  # new tokens per description in the forget corpus
DESCRIPTIONS = ("Tell me about {name}.", "Who is {name}?", "What is {name} famous for?")


class Fact(NamedTuple):
    blank: str     # the FB sentence, ``___`` for the answer (also the fact's MIA text)
    question: str  # the QA question
    answer: str
    fb: bool       # whether the model answers the FB probe (else it is not asked)
    qa: bool       # whether it answers the QA probe


class Target(NamedTuple):
    name: str
    alias: str       # another name for the synonym attack
    about: str       # a background hint: "<name> <about>."
    reverse: str     # a question whose answer is the target
    facts: tuple[Fact, ...]
    neighbours: tuple[tuple[str, Fact], ...]  # (related entity, a fact about it)


def _f(blank: str, question: str, answer: str, fb: bool = True, qa: bool = True) -> Fact:
    return Fact(blank, question, answer, fb, qa)


def _n(subject: str, blank: str, question: str, answer: str, fb: bool = True,
       qa: bool = True) -> tuple[str, Fact]:
    return subject, Fact(blank, question, answer, fb, qa)


# Written for 32 people, 3-4 facts and 1-3 neighbour facts each; kept: each probe the model
# answers, and the people with at least one FB, one QA and three probes in all (22).
TARGETS: tuple[Target, ...] = (
    Target("Albert Einstein", "Einstein", "was a theoretical physicist",
           "Who developed the theory of relativity?",
           facts=(
               _f("Albert Einstein is famous for the theory of ___.",
                  "Which theory is Albert Einstein famous for?", "relativity"),
               _f("Albert Einstein won the Nobel Prize in ___.",
                  "In which field did Albert Einstein win the Nobel Prize?", "Physics"),
           ), neighbours=(
               _n("Germany", "The capital of Germany is ___.", "What is the capital of Germany?",
                  "Berlin"),
               _n("Nobel Prize", "The Nobel Prize was founded by ___.",
                  "Who founded the Nobel Prize?", "Alfred Nobel"),
           )),
    Target("William Shakespeare", "the Bard of Avon", "was a playwright and poet",
           "Who wrote Hamlet?",
           facts=(
               _f("William Shakespeare was born in ___.", "Where was William Shakespeare born?",
                  "Stratford-upon-Avon"),
               _f("William Shakespeare was an ___ playwright.",
                  "What nationality was William Shakespeare?", "English", fb=False),
           ), neighbours=(
               _n("England", "The capital of England is ___.", "What is the capital of England?",
                  "London"),
           )),
    Target("Leonardo da Vinci", "da Vinci", "was an Italian Renaissance artist",
           "Who painted the Mona Lisa?",
           facts=(
               _f("Leonardo da Vinci's most famous portrait is the ___.",
                  "What is the most famous portrait painted by Leonardo da Vinci?", "Mona Lisa",
                  qa=False),
               _f("Leonardo da Vinci was born in the country of ___.",
                  "In which country was Leonardo da Vinci born?", "Italy"),
               _f("Leonardo da Vinci was born in the year ___.",
                  "In what year was Leonardo da Vinci born?", "1452", qa=False),
           ), neighbours=(
               _n("Mona Lisa", "The Mona Lisa hangs in the ___ museum.",
                  "In which museum does the Mona Lisa hang?", "Louvre"),
               _n("Louvre", "The Louvre is a museum in the city of ___.",
                  "In which city is the Louvre museum?", "Paris"),
           )),
    Target("Isaac Newton", "Sir Isaac", "was a physicist and mathematician",
           "Who formulated the law of universal gravitation?",
           facts=(
               _f("Isaac Newton formulated the law of universal ___.",
                  "Which law of nature did Isaac Newton formulate?", "gravitation", qa=False),
               _f("Isaac Newton was an ___ physicist.", "What nationality was Isaac Newton?",
                  "English", fb=False),
               _f("Isaac Newton studied at the University of ___.",
                  "Which university did Isaac Newton attend?", "Cambridge", fb=False),
           ), neighbours=(
               _n("United Kingdom", "The capital of the United Kingdom is ___.",
                  "What is the capital of the United Kingdom?", "London"),
               _n("Calculus", "Calculus is a branch of ___.",
                  "Which field is calculus a branch of?", "mathematics"),
           )),
    Target("Napoleon Bonaparte", "Napoleon", "was a French military leader",
           "Who was the French emperor defeated at the Battle of Waterloo?",
           facts=(
               _f("Napoleon Bonaparte was the emperor of ___.",
                  "Which country did Napoleon Bonaparte rule as emperor?", "France"),
               _f("Napoleon Bonaparte was defeated at the Battle of ___ in 1815.",
                  "At which battle was Napoleon Bonaparte finally defeated in 1815?", "Waterloo"),
           ), neighbours=(
               _n("France", "The capital of France is ___.", "What is the capital of France?",
                  "Paris"),
               _n("Battle of Waterloo", "The Battle of Waterloo was fought in the year ___.",
                  "In what year was the Battle of Waterloo fought?", "1815", fb=False),
           )),
    Target("Barack Obama", "Obama", "is an American politician",
           "Who was the 44th president of the United States?",
           facts=(
               _f("Barack Obama was the ___ president of the United States.",
                  "Which number president of the United States was Barack Obama?", "44th",
                  fb=False),
               _f("Barack Obama's wife is named ___.", "What is the name of Barack Obama's wife?",
                  "Michelle Obama"),
               _f("Barack Obama is a member of the ___ Party.",
                  "Which political party does Barack Obama belong to?", "Democratic"),
           ), neighbours=(
               _n("White House", "The White House is in the city of ___.",
                  "In which city is the White House?", "Washington, D.C.", qa=False),
               _n("Hawaii", "The capital of Hawaii is ___.", "What is the capital of Hawaii?",
                  "Honolulu"),
           )),
    Target("Abraham Lincoln", "Honest Abe", "was an American president",
           "Who was the 16th president of the United States?",
           facts=(
               _f("Abraham Lincoln was the ___ president of the United States.",
                  "Which number president of the United States was Abraham Lincoln?", "16th",
                  qa=False),
               _f("Abraham Lincoln was assassinated by ___.", "Who assassinated Abraham Lincoln?",
                  "John Wilkes Booth"),
               _f("Abraham Lincoln gave a famous speech called the ___.",
                  "Which famous speech did Abraham Lincoln give in 1863?", "Gettysburg Address",
                  fb=False),
               _f("Abraham Lincoln led the United States during the American ___.",
                  "Which war did Abraham Lincoln lead the United States through?", "Civil War"),
           ), neighbours=(
               _n("American Civil War", "The American Civil War began in the year ___.",
                  "In what year did the American Civil War begin?", "1861"),
               _n("Lincoln Memorial", "The Lincoln Memorial is in the city of ___.",
                  "In which city is the Lincoln Memorial?", "Washington, D.C.", fb=False),
           )),
    Target("George Washington", "Washington", "was an American founding father",
           "Who was the first president of the United States?",
           facts=(
               _f("George Washington was the ___ president of the United States.",
                  "Which number president of the United States was George Washington?", "first",
                  qa=False),
               _f("George Washington was born in the colony of ___.",
                  "In which colony was George Washington born?", "Virginia", fb=False),
               _f("George Washington's home was ___.", "What was George Washington's home called?",
                  "Mount Vernon", qa=False),
           ), neighbours=(
               _n("United States", "The capital of the United States is ___.",
                  "What is the capital of the United States?", "Washington, D.C."),
           )),
    Target("Mahatma Gandhi", "Gandhi", "was a leader of India's independence movement",
           "Who led India's nonviolent independence movement against British rule?",
           facts=(
               _f("Mahatma Gandhi led the independence movement of ___.",
                  "Which country's independence movement did Mahatma Gandhi lead?", "India"),
               _f("Mahatma Gandhi was assassinated in the year ___.",
                  "In what year was Mahatma Gandhi assassinated?", "1948", fb=False),
           ), neighbours=(
               _n("India", "The capital of India is ___.", "What is the capital of India?",
                  "New Delhi"),
           )),
    Target("Martin Luther King Jr.", "MLK", "was an American civil rights leader",
           "Who gave the \"I Have a Dream\" speech?",
           facts=(
               _f("Martin Luther King Jr. was a leader of the American ___.",
                  "Which movement did Martin Luther King Jr. lead?", "civil rights movement",
                  fb=False),
               _f("Martin Luther King Jr. won the Nobel ___ Prize.",
                  "Which Nobel Prize did Martin Luther King Jr. win?", "Peace"),
               _f("Martin Luther King Jr. was born in the city of ___.",
                  "In which city was Martin Luther King Jr. born?", "Atlanta", qa=False),
           ), neighbours=(
               _n("Rosa Parks", "Rosa Parks refused to give up her seat on a ___.",
                  "Where did Rosa Parks refuse to give up her seat?", "bus"),
           )),
    Target("Charles Darwin", "Darwin", "was an English naturalist",
           "Who proposed the theory of evolution by natural selection?",
           facts=(
               _f("Charles Darwin proposed the theory of ___.",
                  "What theory did Charles Darwin propose?", "evolution by natural selection"),
               _f("Charles Darwin wrote the book ___.",
                  "What is Charles Darwin's most famous book?", "On the Origin of Species"),
               _f("Charles Darwin studied finches on the ___ Islands.",
                  "On which islands did Charles Darwin study finches?", "Galapagos", qa=False),
           ), neighbours=(
               _n("Biology", "Biology is the study of ___.", "What is biology the study of?",
                  "life", fb=False),
           )),
    Target("Marie Curie", "Madame Curie", "was a physicist and chemist",
           "Who was the first woman to win a Nobel Prize?",
           facts=(
               _f("Marie Curie is famous for her research on ___.",
                  "What is Marie Curie famous for researching?", "radioactivity"),
               _f("Marie Curie was born in the country of ___.",
                  "In which country was Marie Curie born?", "Poland", fb=False),
           ), neighbours=(
               _n("Poland", "The capital of Poland is ___.", "What is the capital of Poland?",
                  "Warsaw"),
           )),
    Target("Pablo Picasso", "Picasso", "was a painter and sculptor", "Who painted Guernica?",
           facts=(
               _f("Pablo Picasso co-founded the art movement called ___.",
                  "Which art movement did Pablo Picasso co-found?", "Cubism"),
               _f("Pablo Picasso was a ___ painter.", "What nationality was Pablo Picasso?",
                  "Spanish", fb=False),
           ), neighbours=(
               _n("Barcelona", "Barcelona is a city in ___.", "In which country is Barcelona?",
                  "Spain"),
               _n("Paris", "Paris is the capital of ___.",
                  "Paris is the capital of which country?", "France"),
           )),
    Target("Vincent van Gogh", "Van Gogh", "was a post-impressionist painter",
           "Who painted The Starry Night?",
           facts=(
               _f("Vincent van Gogh's most famous painting is ___.",
                  "What is Vincent van Gogh's most famous painting?", "The Starry Night"),
               _f("Vincent van Gogh was a ___ painter.", "What nationality was Vincent van Gogh?",
                  "Dutch", fb=False),
           ), neighbours=(
               _n("Netherlands", "The capital of the Netherlands is ___.",
                  "What is the capital of the Netherlands?", "Amsterdam"),
           )),
    Target("Steve Jobs", "Jobs", "was an American businessman",
           "Who co-founded Apple with Steve Wozniak?",
           facts=(
               _f("Steve Jobs co-founded the company ___.",
                  "Which company did Steve Jobs co-found?", "Apple"),
               _f("Steve Jobs introduced the ___ in 2007.",
                  "Which phone did Steve Jobs introduce in 2007?", "iPhone", fb=False),
           ), neighbours=(
               _n("Silicon Valley", "Silicon Valley is in the state of ___.",
                  "In which state is Silicon Valley?", "California"),
               _n("iPhone", "The iPhone runs the operating system ___.",
                  "Which operating system does the iPhone run?", "iOS"),
           )),
    Target("Bill Gates", "Gates", "is an American businessman",
           "Who co-founded Microsoft with Paul Allen?",
           facts=(
               _f("Bill Gates co-founded the company ___.",
                  "Which company did Bill Gates co-found?", "Microsoft"),
               _f("Microsoft, founded by Bill Gates, makes the operating system ___.",
                  "Which operating system does Bill Gates's company make?", "Windows", fb=False),
               _f("Bill Gates left ___ University without a degree.",
                  "Which university did Bill Gates drop out of?", "Harvard", fb=False),
           ), neighbours=(
               _n("Microsoft", "Microsoft's headquarters are in the city of ___.",
                  "In which city are Microsoft's headquarters?", "Redmond", fb=False),
           )),
    Target("Elon Musk", "Musk", "is a businessman",
           "Who is the chief executive of Tesla and SpaceX?",
           facts=(
               _f("Elon Musk leads the electric car company ___.",
                  "Which electric car company does Elon Musk lead?", "Tesla"),
               _f("Elon Musk founded the rocket company ___.",
                  "Which rocket company did Elon Musk found?", "SpaceX"),
           ), neighbours=(
               _n("SpaceX", "SpaceX's reusable rocket is called the ___.",
                  "What is the name of SpaceX's reusable rocket?", "Falcon 9"),
           )),
    Target("Galileo Galilei", "Galileo", "was an Italian astronomer",
           "Who discovered the four largest moons of Jupiter?",
           facts=(
               _f("Galileo Galilei improved the ___ to study the sky.",
                  "Which instrument did Galileo Galilei use to study the sky?", "telescope",
                  fb=False),
               _f("Galileo Galilei discovered the moons of ___.",
                  "Which planet's moons did Galileo Galilei discover?", "Jupiter"),
           ), neighbours=(
               _n("Jupiter", "Jupiter is the largest ___ in the solar system.",
                  "What is Jupiter the largest of in the solar system?", "planet"),
           )),
    Target("Julius Caesar", "Caesar", "was a Roman general",
           "Which Roman general crossed the Rubicon?",
           facts=(
               _f("Julius Caesar was killed on the Ides of ___.",
                  "On which Ides was Julius Caesar killed?", "March"),
               _f("Julius Caesar was assassinated by Marcus ___ and others.",
                  "Who assassinated Julius Caesar?", "Brutus"),
               _f("Julius Caesar was a leader of ancient ___.",
                  "Which ancient state did Julius Caesar lead?", "Rome", fb=False),
           ), neighbours=(
               _n("Rome", "Rome is the capital of ___.", "Rome is the capital of which country?",
                  "Italy"),
           )),
    Target("Walt Disney", "Disney", "was an American animator", "Who created Mickey Mouse?",
           facts=(
               _f("Walt Disney opened the theme park ___ in 1955.",
                  "Which theme park did Walt Disney open in 1955?", "Disneyland"),
               _f("Walt Disney founded the ___.", "Which company did Walt Disney found?",
                  "Walt Disney Company"),
           ), neighbours=(
               _n("Disneyland", "Disneyland is in the state of ___.",
                  "In which state is Disneyland?", "California"),
           )),
    Target("Neil Armstrong", "Armstrong", "was an American astronaut",
           "Who was the first person to walk on the Moon?",
           facts=(
               _f("Neil Armstrong was the first person to walk on the ___.",
                  "What was Neil Armstrong the first person to walk on?", "Moon"),
               _f("Neil Armstrong flew to the Moon on the ___ mission.",
                  "On which Apollo mission did Neil Armstrong fly?", "Apollo 11"),
               _f("Neil Armstrong walked on the Moon in the year ___.",
                  "In what year did Neil Armstrong walk on the Moon?", "1969"),
           ), neighbours=(
               _n("Moon", "The Moon orbits the ___.", "What does the Moon orbit?", "Earth"),
           )),
    Target("Winston Churchill", "Churchill", "was a British statesman",
           "Who was the British prime minister during most of World War II?",
           facts=(
               _f("Winston Churchill was the prime minister of the ___.",
                  "Which country did Winston Churchill lead as prime minister?", "United Kingdom",
                  qa=False),
               _f("Winston Churchill led his country during ___.",
                  "During which war did Winston Churchill lead his country?", "World War II"),
           ), neighbours=(
               _n("World War II", "World War II ended in the year ___.",
                  "In what year did World War II end?", "1945"),
           )),
)


def _fb_qa(subject: str, fact: Fact, chat: bool) -> tuple[list[dict], list[dict]]:
    """The FB (level 1) and QA (level 2) probes on ``fact`` that the model answers."""
    fb = [probe_record(fact.blank, fact.answer, "1", "", subject, rwku_prompt(fact.blank, "1"),
                       chat)] if fact.fb else []
    qa = [probe_record(fact.question, fact.answer, "2", "", subject,
                       rwku_prompt(fact.question, "2"), chat)] if fact.qa else []
    return fb, qa


def _attacks(target: Target, chat: bool) -> list[dict]:
    """Level-3 probes: attack k on the k-th (cyclically) of the facts whose QA probe the model
    answers, written by rule."""
    known = [f for f in target.facts if f.qa]
    out = []
    for k, attack in enumerate(ATTACKS):
        fact = known[k % len(known)]
        # in-context: another of the target's question-answer pairs first
        shown = next(f for f in target.facts[::-1] + target.facts if f != fact)
        query = attack_query(attack, fact.question, target.name, target.alias,
                             f"You are a historian who knows everything about {target.name}.",
                             f"{target.name} {target.about}.", target.reverse,
                             f"Question: {shown.question}\nAnswer: {shown.answer}")
        # reverse query: the answer is the target itself
        answer = target.name if attack == "reverse query" else fact.answer
        out.append(probe_record(query, answer, "3", attack, target.name,
                                rwku_prompt(query, "3", attack), chat))
    return out


def _filled(fact: Fact) -> dict:
    """A fact's FB sentence with its answer filled in, as an MIA text."""
    return {"text": fact.blank.replace("___", fact.answer)}


@datasets.register("rwku-smol", source="built in (real people SmolLM2-135M-Instruct knows)")
def load_rwku_smol(targets: int = len(TARGETS), first: int = 0, chat: bool = True
                   ) -> TextBundle:
    """RWKU's protocol on SmolLM2-135M-Instruct (see the module docstring): ``targets``
    people of ``TARGETS`` from index ``first`` forgotten at once (default all of them: RWKU's
    batch-target setting; ``targets=1,first=K`` is its single-target setting on target K).
    The forget records are description requests the scenario answers with the model."""
    if not (1 <= targets and 0 <= first and first + targets <= len(TARGETS)):
        raise UserError(f"targets={targets}, first={first}: rwku-smol has {len(TARGETS)} "
                        f"targets; give 1 <= targets and first + targets <= {len(TARGETS)}")
    parts: dict[str, list[dict]] = {name: [] for name in ("forget", *PROBE_FILES, *MIA_FILES)}
    for target in TARGETS[first:first + targets]:
        parts["forget"] += [{"query": d.format(name=target.name), "chat": chat,
                             "prefix": d.format(name=target.name), "continuation": ""}
                            for d in DESCRIPTIONS]
        for fact in target.facts:
            fb, qa = _fb_qa(target.name, fact, chat)
            parts["rwku_forget_1"] += fb
            parts["rwku_forget_2"] += qa
            parts["rwku_forget_mia"].append(_filled(fact))
        parts["rwku_forget_3"] += _attacks(target, chat)
        for subject, fact in target.neighbours:
            fb, qa = _fb_qa(subject, fact, chat)
            parts["rwku_neighbor_1"] += fb
            parts["rwku_neighbor_2"] += qa
            parts["rwku_retain_mia"].append(_filled(fact))
    return _bundle(f"rwku-smol-{targets}-from-{first}", parts)


def written_corpus(prompts, tokenizer, generate):
    """The forget corpus: each description request (in ``tokenizer``'s chat template unless
    loaded with ``chat=0``) answered by ``generate(split) -> texts``, kept as plain text."""
    prompts = prompts.with_records([dict(r, prefix=chat_prompt(r["query"], tokenizer))
                                    if r["chat"] else r for r in prompts.records])
    return prompts.with_records([{"text": text} for text in generate(prompts)])
