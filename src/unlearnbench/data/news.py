"""Synthetic news about fictitious towns, companies and people (MUSE-like, offline).

MUSE's News corpus is BBC articles with GPT-4-written questions; neither can be downloaded
here, so this module writes its own: a small world (towns with a region and a population,
companies with a home town and a chief executive, people) and articles about events in it
(a factory opens, a council election, a festival, an acquisition, a discovery, a cup final, a
bridge, a literary prize, a storm). Every article states a few facts of its own event (who,
where, when, how many) in sentences drawn from several phrasings, plus background facts about
the world that many articles repeat. The questions come from the event facts only, and every
question is unique in the corpus, so a fact asked about is stated in exactly one article:
``knowmem_forget`` facts live only in forget articles and ``knowmem_retain`` facts only in
retain articles. Answers are short: a name, a town, a number or a year.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same
world, articles, questions and splits. See ``documents.py`` for the splits and ``forget``."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..registry import datasets
from .documents import assemble_corpus, check_forget_choice
from .text import TextBundle

TOWN_STARTS = ["Ash", "Bram", "Cal", "Dun", "Elm", "Fen", "Glen", "Hart", "Ivel", "Kel",
               "Lor", "Mar", "Nor", "Oak", "Pen", "Quen", "Ros", "Stan", "Thorn", "Wil"]
TOWN_ENDS = ["ford", "wick", "bury", "haven", "moor", "dale", "ton", "field", "mouth", "stead"]
REGIONS = ["the Vell Valley", "Orrin County", "the Tassel Hills", "the Marram Lowlands",
           "Greyhallow Shire", "the Lune Plain"]
RIVERS = ["Tell", "Ombry", "Sable", "Wenn", "Corr", "Hask", "Rill", "Aven"]
COMPANY_STEMS = ["Aldervane", "Brisco", "Corvell", "Daventa", "Elmrick", "Farrowby", "Galtor",
                 "Hessary", "Ironvale", "Jorvane", "Kestwell", "Lumora", "Marbeck", "Norwyn",
                 "Ostrell", "Pellamy", "Quorra", "Ravensby", "Sollace", "Tamberlin", "Ulvercott",
                 "Verrin", "Wexholt", "Yardell"]
SECTORS = ["Foods", "Logistics", "Robotics", "Textiles", "Energy", "Pharma", "Motors",
           "Software", "Brewing", "Steel"]
FACILITIES = {"Foods": "bakery", "Logistics": "warehouse", "Robotics": "assembly plant",
              "Textiles": "mill", "Energy": "solar farm", "Pharma": "laboratory",
              "Motors": "car plant", "Software": "office", "Brewing": "brewery",
              "Steel": "foundry"}
FIRST_NAMES = ["Ada", "Bram", "Celia", "Dorian", "Edith", "Felix", "Greta", "Hugo", "Imogen",
               "Jasper", "Kira", "Leon", "Mina", "Nico", "Odette", "Piers", "Rosa", "Silas",
               "Tamsin", "Ulric", "Vera", "Wyn", "Yara", "Zane", "Agnes", "Basil", "Clara",
               "Dex", "Elsa", "Floyd"]
SURNAMES = ["Ashdown", "Brackley", "Corrin", "Dunmore", "Elwood", "Fairbank", "Gorton",
            "Halloway", "Inglis", "Jessop", "Kerrigan", "Lanyon", "Merrow", "Nettleton",
            "Orwin", "Pask", "Quennell", "Redfern", "Stannard", "Tolley", "Upshaw", "Varley",
            "Wendell", "Yeoman", "Abney", "Belcourt", "Crane", "Dacre", "Fenwick", "Garrow"]
FESTIVALS = ["Lantern", "Harvest", "Kite", "Cider", "Folk", "Jazz", "Puppet", "Storytelling"]
SPECIES = ["beetle", "orchid", "frog", "moth", "lichen", "snail", "fern", "spider"]
SPECIES_NAMES = ["amber", "silver", "ghost", "velvet", "dwarf", "spotted", "crested", "pale"]
TEAM_KINDS = ["Rovers", "United", "Athletic", "Wanderers", "Town", "Rangers"]
CUPS = ["Regional Cup", "Valley Shield", "County Trophy"]
PRIZES = ["Halloran", "Greywell", "Marsden", "Pennick"]
BOOK_WORDS = ["Salt", "Winter", "Glass", "Orchard", "River", "Lantern", "Harbour", "Ember",
              "Willow", "Iron", "Quiet", "Paper"]
BOOK_SHAPES = ["The {a} {b}", "Songs of {a} and {b}", "The {a} and the {b}", "{a} Over {b}"]
STORM_NAMES = ["Agatha", "Bertrand", "Cosima", "Dmitri", "Elspeth", "Fergus", "Gilda",
               "Horace", "Ines", "Jonah"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


class World:
    """The fictitious towns, companies and people the articles are about."""

    def __init__(self, rng: np.random.Generator, n_towns: int = 20, n_companies: int = 24,
                 n_people: int = 150):
        towns = [a + b for a in TOWN_STARTS for b in TOWN_ENDS]
        self.towns = [towns[i] for i in rng.choice(len(towns), n_towns, replace=False)]
        self.region = {t: REGIONS[rng.integers(len(REGIONS))] for t in self.towns}
        self.population = {t: int(rng.integers(30, 400)) * 100 for t in self.towns}
        self.river = {t: RIVERS[rng.integers(len(RIVERS))] for t in self.towns}
        people = [f"{a} {b}" for a in FIRST_NAMES for b in SURNAMES]
        self.people = [people[i] for i in rng.choice(len(people), n_people, replace=False)]
        stems = [COMPANY_STEMS[i] for i in rng.choice(len(COMPANY_STEMS), n_companies, replace=False)]
        self.companies = [f"{s} {SECTORS[rng.integers(len(SECTORS))]}" for s in stems]
        self.home = {c: self.pick(rng, self.towns) for c in self.companies}
        self.ceo = {c: p for c, p in zip(self.companies, self.people[:n_companies])}
        self.ordinary = self.people[n_companies:]  # people who appear in events

    @staticmethod
    def pick(rng: np.random.Generator, items):
        return items[rng.integers(len(items))]

    def town_background(self, rng, town: str) -> str:
        return self.pick(rng, [
            (f"{town}, a town of about {self.population[town]} people in {self.region[town]}, "
             f"lies on the river {self.river[town]}."),
            (f"About {self.population[town]} people live in {town}, which sits on the river "
             f"{self.river[town]} in {self.region[town]}."),
        ])

    def company_background(self, rng, company: str) -> str:
        return self.pick(rng, [
            (f"{company} is based in {self.home[company]} and is led by chief executive "
             f"{self.ceo[company]}."),
            f"Founded in {self.home[company]}, {company} is run by {self.ceo[company]}.",
        ])


# Each event writer returns (topic, sentences, questions): the sentences state the event's
# facts and the questions ask about them (question, answer).

def factory_event(rng, world: World, year: int):
    company, town = world.pick(rng, world.companies), world.pick(rng, world.towns)
    facility = FACILITIES[company.split()[-1]]
    jobs, cost = int(rng.integers(4, 90)) * 10, int(rng.integers(3, 95))
    manager = world.pick(rng, world.ordinary)
    lead = world.pick(rng, [
        f"{company} opened a new {facility} in {town} in {year}.",
        f"In {year}, {company} opened a {facility} on the edge of {town}.",
    ])
    sentences = [
        lead,
        world.pick(rng, [f"The {facility} cost {cost} million pounds and created {jobs} jobs.",
                         f"The site created {jobs} jobs and cost {cost} million pounds to build."]),
        f"It is run by site manager {manager}, who said the town had been an easy choice.",
        world.company_background(rng, company),
        world.town_background(rng, town),
        world.pick(rng, ["Local shops expect more trade once the site is busy.",
                         "Workers from nearby villages are expected to apply for the new posts."]),
    ]
    questions = [
        (f"Which company opened a {facility} in {town} in {year}?", company),
        (f"In which town did {company} open a {facility} in {year}?", town),
        (f"How many jobs did the {year} {company} {facility} in {town} create?", str(jobs)),
        (f"Who manages the {company} {facility} that opened in {town} in {year}?", manager),
    ]
    return "business", sentences, questions


def election_event(rng, world: World, year: int):
    town = world.pick(rng, world.towns)
    winner, loser = (world.ordinary[i] for i in rng.choice(len(world.ordinary), 2, replace=False))
    votes = int(rng.integers(800, 9000))
    margin = int(rng.integers(20, 700))
    sentences = [
        world.pick(rng, [f"{winner} was elected chair of the {town} council in {year}.",
                         f"Voters in {town} chose {winner} as council chair in {year}."]),
        f"{winner} received {votes} votes, {margin} more than {loser}.",
        world.pick(rng, ["Turnout was higher than at the previous election, officials said.",
                         "The count finished shortly after midnight in the town hall."]),
        world.town_background(rng, town),
        f"{winner} promised to repair roads and to keep the library open on Sundays.",
    ]
    questions = [
        (f"Who was elected chair of the {town} council in {year}?", winner),
        (f"How many votes did {winner} receive in the {year} {town} council election?", str(votes)),
        (f"Who lost the {year} {town} council election to {winner}?", loser),
    ]
    return "politics", sentences, questions


def festival_event(rng, world: World, year: int):
    town, kind = world.pick(rng, world.towns), world.pick(rng, FESTIVALS)
    visitors = int(rng.integers(12, 300)) * 100
    headliner, organiser = (world.ordinary[i] for i in rng.choice(len(world.ordinary), 2, replace=False))
    days = int(rng.integers(2, 6))
    sentences = [
        world.pick(rng, [f"The {year} {kind} Festival took place in {town}.",
                         f"{town} hosted the {kind} Festival in {year}."]),
        f"It lasted {days} days and drew {visitors} visitors, organisers said.",
        f"The headline act was {headliner}, who closed the festival on the final evening.",
        f"Organiser {organiser} thanked the volunteers who ran the stalls.",
        world.town_background(rng, town),
    ]
    questions = [
        (f"Which town hosted the {kind} Festival in {year}?", town),
        (f"Who was the headline act of the {year} {kind} Festival?", headliner),
        (f"How many visitors came to the {kind} Festival in {town} in {year}?", str(visitors)),
    ]
    return "culture", sentences, questions


def acquisition_event(rng, world: World, year: int):
    buyer, town = world.pick(rng, world.companies), world.pick(rng, world.towns)
    founder = world.pick(rng, world.ordinary)
    target = f"{founder.split()[1]} and {world.pick(rng, ['Sons', 'Daughters', 'Partners'])}"
    price = int(rng.integers(2, 80))
    staff = int(rng.integers(5, 60))
    sentences = [
        world.pick(rng, [f"{buyer} bought {target}, a family firm from {town}, in {year}.",
                         f"In {year}, {target} of {town} was sold to {buyer}."]),
        f"The price was {price} million pounds.",
        f"{target} was founded by {founder} and employs {staff} people.",
        world.company_background(rng, buyer),
        "Neither firm expects job losses, a spokesperson said.",
    ]
    questions = [
        (f"Which company bought {target} of {town} in {year}?", buyer),
        (f"For how many million pounds was {target} of {town} sold?", str(price)),
        (f"Who founded {target} of {town}?", founder),
        (f"In which year did {buyer} buy {target}?", str(year)),
    ]
    return "business", sentences, questions


def discovery_event(rng, world: World, year: int):
    town, scientist = world.pick(rng, world.towns), world.pick(rng, world.ordinary)
    creature = f"{world.pick(rng, SPECIES_NAMES)} {world.pick(rng, SPECIES)}"
    count = int(rng.integers(3, 60))
    sentences = [
        world.pick(rng, [f"A new {creature} was found near {town} in {year}.",
                         (f"In {year}, scientists described a {creature} never seen before, "
                          f"found near {town}.")]),
        (f"It was discovered by {scientist}, who counted {count} of them along the river "
         f"{world.river[town]}."),
        "The find will be described in a journal later this year.",
        world.town_background(rng, town),
        f"{scientist} asked visitors to keep to the paths to protect the site.",
    ]
    questions = [
        (f"Who discovered the {creature} near {town}?", scientist),
        (f"Near which town was the {creature} found in {year}?", town),
        (f"How many of the {creature} near {town} did {scientist} count?", str(count)),
    ]
    return "science", sentences, questions


def cup_event(rng, world: World, year: int):
    home, away = (world.towns[i] for i in rng.choice(len(world.towns), 2, replace=False))
    cup = world.pick(rng, CUPS)
    team, other = f"{home} {world.pick(rng, TEAM_KINDS)}", f"{away} {world.pick(rng, TEAM_KINDS)}"
    won = int(rng.integers(1, 6))
    lost = int(rng.integers(0, won))
    scorer = world.pick(rng, world.ordinary)
    crowd = int(rng.integers(20, 150)) * 100
    sentences = [
        world.pick(rng, [f"{team} won the {year} {cup}, beating {other} {won}-{lost}.",
                         f"{team} beat {other} {won}-{lost} to lift the {cup} in {year}."]),
        f"The winning goal was scored by {scorer}.",
        f"A crowd of {crowd} watched the final.",
        world.pick(rng, [f"It was a first title in years for the club from {home}.",
                         f"Fans from {home} celebrated in the town square until late."]),
        world.town_background(rng, home),
    ]
    questions = [
        (f"Which team won the {cup} in {year}?", team),
        (f"Who scored the winning goal in the {year} {cup} final?", scorer),
        (f"Which team lost the {year} {cup} final?", other),
        (f"How many people watched the {year} {cup} final?", str(crowd)),
    ]
    return "sport", sentences, questions


def bridge_event(rng, world: World, year: int):
    town, engineer = world.pick(rng, world.towns), world.pick(rng, world.ordinary)
    length, cost = int(rng.integers(40, 900)), int(rng.integers(2, 60))
    river = world.river[town]
    sentences = [
        world.pick(rng, [f"A new bridge over the river {river} opened in {town} in {year}.",
                         f"{town} opened its new bridge across the {river} in {year}."]),
        f"The bridge is {length} metres long and cost {cost} million pounds.",
        f"It was designed by the engineer {engineer}.",
        "Cyclists and walkers have their own lane on the east side.",
        world.town_background(rng, town),
    ]
    questions = [
        (f"Who designed the bridge that opened in {town} in {year}?", engineer),
        (f"How long, in metres, is the bridge that opened in {town} in {year}?", str(length)),
        (f"In which year did {engineer}'s bridge open in {town}?", str(year)),
    ]
    return "infrastructure", sentences, questions


def prize_event(rng, world: World, year: int):
    prize, author = world.pick(rng, PRIZES), world.pick(rng, world.ordinary)
    town = world.pick(rng, world.towns)
    a, b = (BOOK_WORDS[i] for i in rng.choice(len(BOOK_WORDS), 2, replace=False))
    title = world.pick(rng, BOOK_SHAPES).format(a=a, b=b)
    money = int(rng.integers(5, 50)) * 1000
    sentences = [
        world.pick(rng, [f"{author} won the {year} {prize} Prize for the novel {title}.",
                         f"The novel {title} by {author} won the {prize} Prize in {year}."]),
        f"The prize is worth {money} pounds.",
        f"The ceremony was held in {town}, where {author} read from the book.",
        "The judges praised its patient, funny storytelling.",
        world.town_background(rng, town),
    ]
    questions = [
        (f"Who won the {prize} Prize in {year}?", author),
        (f"Which novel won the {prize} Prize in {year}?", title),
        (f"Who wrote the novel {title}?", author),
        (f"In which town was the {year} {prize} Prize ceremony held?", town),
    ]
    return "culture", sentences, questions


def storm_event(rng, world: World, year: int):
    storm, town = world.pick(rng, STORM_NAMES), world.pick(rng, world.towns)
    month = world.pick(rng, MONTHS)
    homes = int(rng.integers(10, 600))
    officer = world.pick(rng, world.ordinary)
    sentences = [
        world.pick(rng, [f"Storm {storm} flooded parts of {town} in {month} {year}.",
                         f"In {month} {year}, Storm {storm} brought floods to {town}."]),
        f"Water entered {homes} homes as the river {world.river[town]} burst its banks.",
        f"Rescue work was led by fire officer {officer}.",
        "Schools closed for two days while the roads were cleared.",
        world.town_background(rng, town),
    ]
    questions = [
        (f"Which town did Storm {storm} flood in {month} {year}?", town),
        (f"How many homes did Storm {storm} flood in {town}?", str(homes)),
        (f"Who led the rescue work when Storm {storm} hit {town} in {year}?", officer),
    ]
    return "weather", sentences, questions


# Colour sentences per topic: no asked fact, they make articles longer and less uniform.
EXTRAS = {
    "business": ["Analysts said the move showed confidence in the local economy.",
                 "The firm's shares rose slightly after the news.",
                 "\"We have wanted to grow here for a long time,\" said {person}.",
                 "Trade unions welcomed the plans but asked for guarantees on pay.",
                 "The council said it would improve bus links to the area."],
    "politics": ["\"This is a win for every street in {town},\" said {person}.",
                 "Several candidates campaigned on housing and public transport.",
                 "The new council will meet for the first time next month.",
                 "Local papers described the race as the closest in a decade."],
    "culture": ["\"It was the best weekend of the year,\" said {person}, a local teacher.",
                "Tickets sold out weeks in advance.",
                "Restaurants in {town} reported their busiest week of the year.",
                "Some events were moved indoors when it rained."],
    "science": ["\"Finds like this remind us how much is left to learn,\" said {person}.",
                "Samples were sent to a museum for further study.",
                "Local walkers had reported the animals for years without knowing what they were.",
                "The team hopes to return next spring with more equipment."],
    "sport": ["\"The players gave everything,\" said coach {person}.",
              "Both teams had a goal ruled out in the first half.",
              "The trophy will be shown at the {town} library next week.",
              "Police said the crowd was good-natured throughout."],
    "infrastructure": ["\"It has changed how people get to work,\" said {person}.",
                       "Work on the bridge took more than two years.",
                       "The old crossing will be kept for pedestrians.",
                       "Traffic in the centre of {town} is expected to fall."],
    "weather": ["\"We lost almost everything on the ground floor,\" said {person}.",
                "Volunteers handed out blankets and hot food in the sports hall.",
                "Forecasters had warned of heavy rain two days earlier.",
                "Insurers said claims could take months to settle."],
}


def with_extras(event):
    """Wrap an event writer: add two colour sentences of its topic before the last sentence."""
    def write(rng, world: World, year: int):
        topic, sentences, questions = event(rng, world, year)
        text = " ".join(sentences)
        town = min(world.towns, key=lambda t: (text.find(t) < 0, text.find(t)))
        pool = EXTRAS[topic]
        extras = [pool[i].format(person=world.pick(rng, world.ordinary), town=town)
                  for i in rng.choice(len(pool), 2, replace=False)]
        return topic, sentences[:-1] + extras + sentences[-1:], questions
    write.__name__ = event.__name__
    return write


EVENTS = [with_extras(e) for e in (factory_event, election_event, festival_event, acquisition_event, discovery_event,
          cup_event, bridge_event, prize_event, storm_event)]


def generate_articles(n_articles: int, seed: int = 0, questions_per_article: int = 2,
                      max_tries: int = 200) -> tuple[list[dict], list[list[dict]]]:
    """``n_articles`` articles ({text, topic, year}) and, for each, its questions
    ({question, answer}). Every question in the corpus is unique (an event whose questions
    collide with an earlier article's is drawn again)."""
    rng = np.random.default_rng(seed)
    world = World(rng)
    used: set[str] = set()
    articles, questions = [], []
    for _ in range(n_articles):
        for _attempt in range(max_tries):
            year = int(rng.integers(2001, 2024))
            topic, sentences, facts = EVENTS[rng.integers(len(EVENTS))](rng, world, year)
            if not any(q in used for q, _ in facts):
                break
        else:
            raise UserError(f"could not write {n_articles} news articles with distinct facts: "
                            "ask for fewer articles")
        used.update(q for q, _ in facts)
        articles.append({"text": " ".join(sentences), "topic": topic, "year": year})
        chosen = rng.choice(len(facts), min(questions_per_article, len(facts)), replace=False)
        questions.append([{"question": facts[i][0], "answer": facts[i][1]} for i in sorted(chosen)])
    return articles, questions


@datasets.register("news", source="generated offline (MUSE-like news)")
def load_news(forget: str = "forget", n_articles: int = 320, forget_fraction: float = 0.25,
              holdout_fraction: float = 0.25, questions_per_article: int = 2,
              verbatim_fraction: float = 0.6, seed: int = 0,
              validation: bool = False) -> TextBundle:
    """Synthetic news about fictitious towns, companies and people (MUSE-like, offline).

    ``n_articles`` articles (60-150 words) are shuffled by ``seed``; ``forget_fraction`` of
    them are the forget set, ``holdout_fraction`` the never-trained holdout set, the rest the
    retain set. Each article is one forget unit of the scale and sustain sets. ``forget``:
    "forget", "scale_1".."scale_4" or "sustain_1".."sustain_4" (see ``documents.py``).

    ``validation``: the request hyperparameters are tuned on (``unlearnbench tune``): as many
    retain articles are forgotten instead, and the forget articles are retained; the same
    articles are trained and the holdout is unchanged."""
    check_forget_choice(forget)
    if n_articles < 12:
        raise UserError(f"n_articles={n_articles} is too small: use at least 12")
    if not (0 < forget_fraction < 1 and 0 < holdout_fraction < 1
            and forget_fraction + holdout_fraction < 1):
        raise UserError("forget_fraction and holdout_fraction must be positive and sum to less "
                        f"than 1, got {forget_fraction} and {holdout_fraction}")
    if questions_per_article < 1:
        raise UserError(f"questions_per_article must be at least 1, got {questions_per_article}")
    articles, article_questions = generate_articles(n_articles, seed, questions_per_article)
    n_forget = max(4, round(forget_fraction * n_articles))
    n_holdout = max(1, round(holdout_fraction * n_articles))
    if n_forget + n_holdout >= n_articles:
        raise UserError(f"n_articles={n_articles} leaves no retain articles: use more articles "
                        "or smaller fractions")
    if validation and n_articles - n_holdout < 2 * n_forget:
        raise UserError(f"news[validation=1] forgets {n_forget} retain articles instead, and "
                        f"n_articles={n_articles} leaves fewer: use more articles or a smaller "
                        "forget_fraction")
    # Articles are generated independently, so position order is already random; the roles
    # are drawn once more so that a role never depends on the writer's topic sequence.
    order = np.random.default_rng([seed, 1]).permutation(n_articles)
    roles = [""] * n_articles
    for rank, position in enumerate(order):
        roles[position] = ("forget" if rank < n_forget else
                           "holdout" if rank < n_forget + n_holdout else "retain")
        if validation and roles[position] != "holdout":  # the next n_forget articles instead
            roles[position] = ("forget" if n_forget + n_holdout <= rank < 2 * n_forget + n_holdout
                               else "retain")
    documents, doc_roles = [], []
    questions = []
    for role in ("forget", "retain", "holdout"):  # forget documents first, in unit order
        for position in order:
            if roles[position] != role:
                continue
            doc = len(documents)
            documents.append(articles[position])
            doc_roles.append(role)
            if role != "holdout":
                questions.extend({**q, "sources": [doc]} for q in article_questions[position])
    return assemble_corpus("news", documents, doc_roles, list(range(len(documents))), questions,
                           forget=forget, verbatim_fraction=verbatim_fraction)
