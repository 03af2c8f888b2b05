"""Multiple-choice knowledge tests in WMDP's protocol, and loaders for WMDP's and MMLU's files.

A multiple-choice record is a verbatim pair (``data/text.py``): ``prefix`` is the prompt
lm-evaluation-harness builds for WMDP and MMLU (zero-shot)::

    The following are multiple choice questions (with answers) about biology.

    <question, stripped>
    A. <choice 0>
    B. <choice 1>
    C. <choice 2>
    D. <choice 3>
    Answer:

and ``continuation`` the correct letter after a space (" B"); ``choices`` (four strings) and
``label`` (0-3) are kept beside them. Trained, such a record teaches the format (only the letter
is scored); evaluated, ``metrics/multiple_choice.py`` compares the log-likelihoods of " A" ..
" D" after the prompt, as the harness does.

File formats read here:

- WMDP (``cais/wmdp`` on the Hugging Face hub, configs ``wmdp-bio``, ``wmdp-cyber``,
  ``wmdp-chem``, split ``test``): records ``{"question": str, "choices": [4 str], "answer":
  0-3}``, in a JSON-lines file, a JSON array, or a parquet file named ``wmdp-bio.jsonl`` /
  ``.json`` / ``.parquet`` (``bio``, ``cyber`` or ``chem`` in place of ``wmdp-bio`` too);
- MMLU (the original release's CSV files, ``<subject>_test.csv``): no header, one question a
  row: question, four choices, the answer letter;
- a forget or retain corpus: JSON lines (or a JSON array, or parquet) with a ``text`` field per
  document, as WMDP's corpora are published (``bio-forget-corpus.jsonl``, ...)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..registry import datasets
from .text import TextBundle, text_split

LETTERS = ("A", "B", "C", "D")
DESCRIPTION = "The following are multiple choice questions (with answers) about {subject}.\n\n"
# WMDP's subjects, by the name of its configs
WMDP_SUBJECTS = {"bio": "biology", "cyber": "cybersecurity", "chem": "chemistry"}
TABLE_SUFFIXES = (".jsonl", ".json", ".parquet")


def mc_prompt(question: str, choices, subject: str) -> str:
    """lm-evaluation-harness's zero-shot WMDP / MMLU context (description + question)."""
    lines = [question.strip(), *(f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices))]
    return DESCRIPTION.format(subject=subject) + "\n".join(lines) + "\nAnswer:"


def mc_record(question: str, choices, label: int, subject: str) -> dict:
    """One multiple-choice record (see the module docstring)."""
    return {"prefix": mc_prompt(question, choices, subject), "continuation": " " + LETTERS[label],
            "choices": list(choices), "label": int(label)}


# ----------------------------------------------------------------------------- files

def _read_table(path: Path) -> list[dict]:
    """Rows of a JSON-lines file, a JSON array or a parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises its own error types for a bad file
            raise UserError(f"{path} is not a readable parquet file ({exc})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})")
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}, line {number}: not valid JSON ({exc.msg}); each "
                                    "line must be one JSON object")
    if not all(isinstance(row, dict) for row in rows):
        raise UserError(f"{path}: expected JSON objects, one per record")
    return rows


def _find(directory: Path, stems, what: str) -> Path:
    for stem in stems:
        for suffix in TABLE_SUFFIXES:
            if (directory / f"{stem}{suffix}").is_file():
                return directory / f"{stem}{suffix}"
    raise UserError(f"no {stems[0]}.jsonl (or .json, .parquet) in {directory}: put {what} there")


def read_wmdp(path, subject: str) -> list[dict]:
    """The multiple-choice records of one WMDP question file (JSON lines, JSON array or
    parquet: ``question``, ``choices``, ``answer``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no WMDP question file {path}: download it first (cais/wmdp)")
    records = []
    for number, row in enumerate(_read_table(path), start=1):
        question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
        if not (isinstance(question, str) and isinstance(choices, list) and len(choices) == 4
                and all(isinstance(c, str) for c in choices)
                and isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < 4):
            raise UserError(f"{path}, record {number}: a WMDP record needs 'question' (text), "
                            "'choices' (4 texts) and 'answer' (0-3)")
        records.append(mc_record(question, choices, answer, subject))
    return records


def read_mmlu_csv(path, subject: str | None = None) -> list[dict]:
    """The multiple-choice records of one MMLU CSV file (no header; question, A, B, C, D,
    answer letter). ``subject`` defaults to the file's name: ``college_biology_test.csv`` ->
    "college biology", as the harness words it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no MMLU file {path}: give an MMLU-format CSV file")
    if subject is None:
        subject = path.stem.removesuffix("_test").removesuffix("_dev").replace("_", " ")
    records = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 6 or row[5].strip() not in LETTERS:
                raise UserError(f"{path}, row {number}: an MMLU row has 6 columns (question, "
                                "four choices, the answer letter A-D)")
            records.append(mc_record(row[0], row[1:5], LETTERS.index(row[5].strip()), subject))
    return records


def read_documents(path) -> list[dict]:
    """A corpus of documents (JSON lines, JSON array or parquet, a ``text`` field each)."""
    path = Path(path)
    documents = []
    for number, row in enumerate(_read_table(path), start=1):
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise UserError(f"{path}, record {number}: a corpus document needs a 'text' field")
        documents.append({"text": row["text"]})
    return documents


@datasets.register("wmdp", source="WMDP question files and corpora in a local directory")
def load_wmdp(path: str | None = None, domain: str = "bio", mmlu: str = "") -> TextBundle:
    """WMDP (Li et al., 2024) from a local directory: one domain's questions and corpora.

    The directory holds ``wmdp-<domain>`` (the question file, scored as ``wmdp``),
    ``<domain>-forget-corpus`` (the forget documents) and ``<domain>-retain-corpus`` (retain
    documents; falls back to ``wikitext``, RMU's retain corpus), each .jsonl, .json or
    .parquet, and MMLU CSV files for utility (``mmlu``: the names of files in the directory,
    separated by ``+``; default every ``*_test.csv`` there). Nothing is ``also_trained``: the
    model is a pretrained one that already has the knowledge."""
    if domain not in WMDP_SUBJECTS:
        raise UserError(f"domain={domain!r}: choose one of {', '.join(WMDP_SUBJECTS)}")
    if not path:
        raise UserError("the wmdp data set needs the directory of your WMDP files: run the "
                        "benchmark as wmdp[path=DIR]")
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory: give the folder holding wmdp-{domain}"
                        ".jsonl and the corpora")
    questions = read_wmdp(_find(directory, (f"wmdp-{domain}", domain),
                                f"WMDP's {domain} questions"), WMDP_SUBJECTS[domain])
    forget = read_documents(_find(directory, (f"{domain}-forget-corpus",),
                                  f"the {domain} forget corpus"))
    retain = read_documents(_find(directory, (f"{domain}-retain-corpus", "wikitext"),
                                  "a retain corpus"))
    names = mmlu.split("+") if mmlu else sorted(p.name for p in directory.glob("*_test.csv"))
    if not names:
        raise UserError(f"no MMLU CSV files (*_test.csv) in {directory}: put MMLU's test "
                        "files there or name them with mmlu=A.csv+B.csv")
    general = [r for name in names for r in read_mmlu_csv(directory / name)]
    sizes = np.cumsum([0, len(forget), len(retain), len(questions), len(general)])
    parts = {"forget": forget, "retain": retain, "wmdp": questions, "mmlu": general}
    splits = {name: text_split(name, records, np.arange(sizes[i], sizes[i + 1]))
              for i, (name, records) in enumerate(parts.items())}
    return TextBundle(f"wmdp-{domain}", splits)
