"""Document corpora in MUSE's shape, shared by the synthetic news (``news.py``) and the
public-domain books (``books.py``).

A corpus is a list of documents ({text, ...}), each with a role (forget, retain or holdout),
plus knowledge questions ({question, answer, sources}) whose ``sources`` are the positions of
the documents that state the fact. ``assemble_corpus`` turns that into a ``TextBundle`` with
the splits MUSE evaluates:

- ``forget``, ``retain``: the training documents; ``holdout``: documents never trained;
- ``verbatim``: one {prefix, continuation} pair per forget document, cut at a word boundary
  after ``verbatim_fraction`` of its words (prefix + continuation is the document's text);
- ``knowmem_forget`` / ``knowmem_retain``: questions whose facts are stated only in forget /
  only in retain documents;
- ``mia_forget`` / ``mia_holdout``: forget and holdout documents, cut to equal sizes;
- ``scale_1`` .. ``scale_4``: nested forget sets (``scale_4`` is the whole forget set) and
  ``sustain_1`` .. ``sustain_4``: disjoint forget sets that together make the forget set.
  Both are cut along forget units (an article, a book), in the order the caller gives.

Ids: document ``i`` has id ``i`` in every split it appears in; the verbatim pair cut from
document ``i`` has id ``N + i`` and question ``j`` has id ``2N + j`` (``N`` documents), so
ids are unique across the data set and stable across the ``forget`` choices.

``forget`` picks the request: ``"forget"`` (the whole forget set), ``"scale_k"`` or
``"sustain_k"``. For a smaller request the target model is still trained on every forget
document, so the bundle's ``forget`` split is the chosen set and its ``retain`` split is the
retain documents plus the forget documents outside the chosen set (the retrained reference
keeps those). ``verbatim``, ``knowmem_forget`` and ``mia_forget`` then cover only the chosen
set; ``knowmem_retain`` keeps only facts from the original retain documents, so it is the
same for every choice. MUSE (Shi et al., 2024) draws scale and sustain sets from a larger
news pool than its forget set; here they are cut from the forget set itself."""
from __future__ import annotations

import itertools
import re

import numpy as np

from ..errors import UserError
from .text import TextBundle, text_split

N_GROUPS = 4
FORGET_CHOICES = ("forget", *(f"scale_{k}" for k in range(1, N_GROUPS + 1)),
                  *(f"sustain_{k}" for k in range(1, N_GROUPS + 1)))
ROLES = ("forget", "retain", "holdout")


def check_forget_choice(forget: str) -> str:
    if forget not in FORGET_CHOICES:
        raise UserError(f"forget={forget!r} is not a forget set of this corpus; choose one of: "
                        f"{', '.join(FORGET_CHOICES)}")
    return forget


def split_at_word(text: str, fraction: float) -> tuple[str, str]:
    """(prefix, continuation) with ``prefix + continuation == text``: the prefix holds the
    first ``round(fraction * words)`` words (at least one, and at least one word is left for
    the continuation), the continuation starts with the whitespace before the next word."""
    if not 0.0 < fraction < 1.0:
        raise UserError(f"verbatim_fraction must lie strictly between 0 and 1, got {fraction}")
    starts = [m.start() for m in re.finditer(r"\S+", text)]
    if len(starts) < 2:
        raise ValueError(f"cannot cut a text of {len(starts)} word(s) into prefix and continuation")
    keep = min(max(1, round(fraction * len(starts))), len(starts) - 1)
    cut = len(text[:starts[keep]].rstrip())
    return text[:cut], text[cut:]


def unit_groups(units: list) -> list[list]:
    """Cut an ordered list of forget units into ``N_GROUPS`` consecutive groups of near-equal
    size (sizes differ by at most one)."""
    if len(units) < N_GROUPS:
        raise UserError(f"the forget set has {len(units)} forget unit(s); scale and sustain sets "
                        f"need at least {N_GROUPS}: make the forget set larger")
    bounds = np.linspace(0, len(units), N_GROUPS + 1).round().astype(int)
    return [list(units[a:b]) for a, b in itertools.pairwise(bounds)]


def assemble_corpus(name: str, documents: list[dict], roles: list[str], units: list,
                    questions: list[dict], *, forget: str = "forget",
                    verbatim_fraction: float = 0.6) -> TextBundle:
    """The MUSE-like bundle of a corpus (see the module docstring).

    ``roles[i]`` is "forget", "retain" or "holdout"; ``units[i]`` names the forget unit of a
    forget document (ignored for the others): scale and sustain sets take whole units, in the
    order the units first appear among the forget documents. Each question's ``sources`` lists
    document positions, all of one role."""
    check_forget_choice(forget)
    n = len(documents)
    if len(roles) != n or len(units) != n:
        raise ValueError("assemble_corpus needs one role and one unit per document")
    bad = set(roles) - set(ROLES)
    if bad:
        raise ValueError(f"unknown document roles {sorted(bad)}")
    by_role = {role: [i for i in range(n) if roles[i] == role] for role in ROLES}
    for role, members in by_role.items():
        if not members:
            raise UserError(f"data set {name!r} has no {role} documents: make it larger")

    order = list(dict.fromkeys(units[i] for i in by_role["forget"]))
    groups = unit_groups(order)
    group_of = {unit: g for g, members in enumerate(groups) for unit in members}
    group_docs = [[i for i in by_role["forget"] if group_of[units[i]] == g]
                  for g in range(N_GROUPS)]
    sets = {"forget": by_role["forget"]}
    for k in range(1, N_GROUPS + 1):
        sets[f"scale_{k}"] = [i for g in range(k) for i in group_docs[g]]
        sets[f"sustain_{k}"] = group_docs[k - 1]
    chosen = sets[forget]
    chosen_set = set(chosen)
    retain = by_role["retain"] + [i for i in by_role["forget"] if i not in chosen_set]
    holdout = by_role["holdout"]

    def docs(split_name: str, positions: list[int]):
        return text_split(split_name, [documents[i] for i in positions], positions)

    verbatim = []
    for i in chosen:
        prefix, continuation = split_at_word(documents[i]["text"], verbatim_fraction)
        verbatim.append({"prefix": prefix, "continuation": continuation, "source": i})

    retain_role = set(by_role["retain"])
    know_forget, know_forget_ids, know_retain, know_retain_ids = [], [], [], []
    for j, question in enumerate(questions):
        sources = set(question["sources"])
        if not sources or len({roles[i] for i in sources}) != 1:
            raise ValueError(f"question {question['question']!r}: its sources must be documents "
                             "of one role")
        if sources <= chosen_set:
            know_forget.append(question)
            know_forget_ids.append(2 * n + j)
        elif sources <= retain_role:
            know_retain.append(question)
            know_retain_ids.append(2 * n + j)
    for split_name, records in (("knowmem_forget", know_forget), ("knowmem_retain", know_retain)):
        if not records:
            raise UserError(f"data set {name!r} (forget={forget!r}) has no {split_name} "
                            "questions: make the corpus larger")

    size = min(len(chosen), len(holdout))
    splits = {
        "forget": docs("forget", chosen),
        "retain": docs("retain", retain),
        "holdout": docs("holdout", holdout),
        "verbatim": text_split("verbatim", verbatim, [n + i for i in chosen]),
        "knowmem_forget": text_split("knowmem_forget", know_forget, know_forget_ids),
        "knowmem_retain": text_split("knowmem_retain", know_retain, know_retain_ids),
        "mia_forget": docs("mia_forget", chosen[:size]),
        "mia_holdout": docs("mia_holdout", holdout[:size]),
    }
    for k in range(1, N_GROUPS + 1):
        for kind in ("scale", "sustain"):
            splits[f"{kind}_{k}"] = docs(f"{kind}_{k}", sets[f"{kind}_{k}"])
    return TextBundle(name, splits)
