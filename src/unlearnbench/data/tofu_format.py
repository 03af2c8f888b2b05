"""TOFU's file layout: write our splits in it, and read a user's real TOFU files.

TOFU (locuslab/TOFU on the Hugging Face hub) ships one JSON-lines file per config, named
``<config>.json``: ``full``, ``forget01/05/10``, ``retain90/95/99``, ``holdout01/05/10``,
``forget01/05/10_perturbed``, ``retain_perturbed``, ``real_authors(_perturbed)`` and
``world_facts(_perturbed)``. Every record has ``question`` and ``answer``; the ``*_perturbed``
files add ``paraphrased_answer``, ``perturbed_answer`` (a list) and in some
``paraphrased_question``. Two layouts are read and written here:

- a directory of JSON-lines files (``.json`` or ``.jsonl``; a file holding one JSON array,
  as some mirrors store them, is read too);
- a ``datasets.DatasetDict`` saved with ``save_to_disk`` (recognised by its
  ``dataset_dict.json``), one split per config.

Ids: when every record read carries an integer ``id`` field, it is the example's id (and is
removed from the record); otherwise examples are numbered by their first appearance, files
taken in a fixed order (``full`` first, then by name), and the same question and answer in two
files (forget10 and forget10_perturbed) get the same id. A question-answer pair repeated in
one file gets a new id at each repetition (matched by position across files). Fields with a
null value (columns a ``datasets`` split holds for other records only) are dropped; any other
field, ours (``entity``) or unknown, is kept in the record.

``load_tofu`` (the ``tofu`` data set) builds a benchmark bundle from such a directory and
scores the records TOFU's evaluation scores (the first 300 of each ``*_perturbed`` file).
TOFU trains on the plain files and evaluates on the ``*_perturbed`` ones; both describe the
same examples (same ids here), so the forget split is taken from ``forget<k>_perturbed`` when
present (the same records with the extra fields)."""
from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..registry import datasets
from .entities import REFUSALS, check_forget_choice
from .text import TextBundle, TextSplit, text_split

TOFU_FIELDS = ("question", "answer", "paraphrased_answer", "perturbed_answer",
               "paraphrased_question")
SUFFIXES = (".json", ".jsonl")
REFUSALS_FILE = "idontknow.jsonl"  # TOFU's refusal strings: plain text, one per line
DATASET_DICT_MARKER = "dataset_dict.json"


# ----------------------------------------------------------------------------- writing

def _export_record(record: dict, example_id: int) -> dict:
    """TOFU's fields first (in TOFU's order), then our extra fields, then ``id``."""
    ordered = {k: record[k] for k in TOFU_FIELDS if k in record}
    ordered.update({k: v for k, v in record.items() if k not in ordered and k != "id"})
    ordered["id"] = int(example_id)
    return ordered


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise UserError(f"cannot use {name!r} as a split's file name: use letters, digits "
                        "and underscores")


def write_tofu_jsonl(splits: dict[str, TextSplit], directory) -> list[Path]:
    """Write each split to ``<directory>/<name>.json`` (JSON lines, TOFU's field order, our
    extra fields and the ``id`` after them). Returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, split in splits.items():
        _check_name(name)
        path = directory / f"{name}.json"
        with open(path, "w", encoding="utf-8") as out:
            for record, example_id in zip(split.records, split.ids.tolist()):
                out.write(json.dumps(_export_record(record, example_id)) + "\n")
        paths.append(path)
    return paths


def write_tofu_dataset(splits: dict[str, TextSplit], directory) -> Path:
    """Save the splits as one ``datasets.DatasetDict`` (``save_to_disk``), a split per name,
    with the same columns as the JSON-lines files. Returns the directory."""
    hf = _import_datasets()
    directory = Path(directory)
    parts = {}
    for name, split in splits.items():
        _check_name(name)
        rows = [_export_record(r, i) for r, i in zip(split.records, split.ids.tolist())]
        if rows:
            columns = list(dict.fromkeys(k for row in rows for k in row))
            parts[name] = hf.Dataset.from_dict({k: [row.get(k) for row in rows]
                                                for k in columns})
        else:  # arrow needs a schema to write no rows
            parts[name] = hf.Dataset.from_dict(
                {"question": [], "answer": [], "id": []},
                features=hf.Features(question=hf.Value("string"), answer=hf.Value("string"),
                                     id=hf.Value("int64")))
    with _quiet(hf):
        # One shard per split: an empty split saved in zero shards cannot be loaded back.
        hf.DatasetDict(parts).save_to_disk(str(directory), num_shards={n: 1 for n in parts})
    return directory


# ----------------------------------------------------------------------------- reading

def is_dataset_dict(directory) -> bool:
    return (Path(directory) / DATASET_DICT_MARKER).is_file()


def available_splits(directory) -> list[str]:
    """The split names a TOFU directory holds (either layout), sorted."""
    directory = _existing_directory(directory)
    if is_dataset_dict(directory):
        try:
            names = json.loads((directory / DATASET_DICT_MARKER).read_text())["splits"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{directory / DATASET_DICT_MARKER} is not a datasets "
                            f"DatasetDict index ({exc}): save it again with save_to_disk")
        return sorted(names)
    return sorted({p.stem for p in directory.iterdir()
                   if p.suffix in SUFFIXES and p.is_file() and p.name != REFUSALS_FILE})


def read_tofu_jsonl(directory, names: Iterable[str] | None = None) -> dict[str, TextSplit]:
    """Read ``<name>.json`` or ``<name>.jsonl`` files (JSON lines, or one JSON array) from
    ``directory``: the given ``names``, or every such file there. Ids as in the module
    docstring."""
    directory = _existing_directory(directory)
    names = available_splits(directory) if names is None else list(names)
    raw = {}
    for name in names:
        raw[name] = _read_records(_split_file(directory, name))
    return _to_splits(raw, source=str(directory))


def read_tofu_dataset(directory, names: Iterable[str] | None = None) -> dict[str, TextSplit]:
    """Read a ``datasets.DatasetDict`` saved with ``save_to_disk``: the given ``names`` or
    every split."""
    hf = _import_datasets()
    directory = _existing_directory(directory)
    try:
        with _quiet(hf):
            loaded = hf.load_from_disk(str(directory))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(f"cannot load a datasets DatasetDict from {directory}: {exc}")
    if not isinstance(loaded, hf.DatasetDict):
        raise UserError(f"{directory} holds a single datasets Dataset, not a DatasetDict of "
                        "TOFU splits: save a DatasetDict({name: dataset, ...}) instead")
    names = sorted(loaded) if names is None else list(names)
    raw = {}
    for name in names:
        if name not in loaded:
            raise UserError(f"the DatasetDict in {directory} has no split {name!r} (it has "
                            f"{', '.join(sorted(loaded)) or 'none'})")
        raw[name] = [{k: v for k, v in row.items() if v is not None}
                     for row in loaded[name].to_list()]
    return _to_splits(raw, source=str(directory))


def read_tofu(directory, names: Iterable[str] | None = None) -> dict[str, TextSplit]:
    """Either layout: a saved DatasetDict when ``dataset_dict.json`` is there, else JSON
    lines."""
    if is_dataset_dict(_existing_directory(directory)):
        return read_tofu_dataset(directory, names)
    return read_tofu_jsonl(directory, names)


def _existing_directory(directory) -> Path:
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory: give the folder holding the TOFU "
                        "files (forget10.json, retain90.json, ...)")
    return directory


def _split_file(directory: Path, name: str) -> Path:
    for suffix in SUFFIXES:  # .json first, as TOFU names them
        path = directory / f"{name}{suffix}"
        if path.is_file():
            return path
    raise UserError(f"no {name}.json (or {name}.jsonl) in {directory}: put TOFU's "
                    f"{name} file there")


def _read_records(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    if text.lstrip().startswith("["):  # one JSON array of records
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})")
        numbered = list(enumerate(records, start=1))
        where = "item"
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}, line {number}: not valid JSON ({exc.msg}); each line "
                                "must be one JSON object")
        where = "line"
    for number, record in numbered:
        if not isinstance(record, dict):
            raise UserError(f"{path}, {where} {number}: expected a JSON object with question "
                            f"and answer, got {type(record).__name__}")
        if not isinstance(record.get("question"), str) or not isinstance(record.get("answer"), str):
            raise UserError(f"{path}, {where} {number}: a record needs text fields 'question' "
                            f"and 'answer' (it has {', '.join(sorted(record)) or 'none'})")
    return [record for _, record in numbered]


def _integer_id(value) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _file_order(name: str) -> tuple:
    return (name != "full", name)


def _to_splits(raw: dict[str, list[dict]], source: str) -> dict[str, TextSplit]:
    """TextSplits from each name's records, with ids (see the module docstring)."""
    all_records = [r for records in raw.values() for r in records]
    if all_records and all(_integer_id(r.get("id")) is not None for r in all_records):
        splits = {}
        for name, records in raw.items():
            ids = [_integer_id(r["id"]) for r in records]
            if len(set(ids)) != len(ids):
                raise UserError(f"split {name!r} in {source} repeats an id: give every "
                                "record its own id, or remove the id field to number them")
            splits[name] = text_split(name, [{k: v for k, v in r.items() if k != "id"}
                                             for r in records], ids)
        return splits
    numbers: dict[tuple, int] = {}
    ids = {}
    for name in sorted(raw, key=_file_order):
        seen: dict[tuple, int] = {}
        split_ids = []
        for record in raw[name]:
            pair = (record["question"], record["answer"])
            seen[pair] = seen.get(pair, -1) + 1
            key = (*pair, seen[pair])
            split_ids.append(numbers.setdefault(key, len(numbers)))
        ids[name] = split_ids
    return {name: text_split(name, records, ids[name]) for name, records in raw.items()}


@contextmanager
def _quiet(hf):
    """No progress bars from ``datasets`` (restored afterwards)."""
    was_enabled = hf.is_progress_bar_enabled()
    hf.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            hf.enable_progress_bars()


def _import_datasets():
    try:
        import datasets as hf
    except ImportError:
        raise UserError("the Hugging Face layout needs the datasets package: "
                        "pip install datasets (or use the JSON-lines files)")
    return hf


# ----------------------------------------------------------------------------- the data set

def read_refusals(directory) -> tuple[str, ...]:
    """TOFU's ``idontknow.jsonl`` (one refusal a line, plain text) when the directory has
    it, else our REFUSALS."""
    path = Path(directory) / REFUSALS_FILE
    if not path.is_file():
        return REFUSALS
    lines = tuple(line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines())
    return tuple(line for line in lines if line) or REFUSALS


# TOFU's evaluation (``eval_everything.yaml``: ``ds_size: 300``) scores the first 300
# records of each evaluation file: 300 of forget10's 400 and of retain_perturbed's 400, all
# 40 / 200 of forget01 / forget05, all 100 real authors and 117 world facts.
TOFU_EVAL_SIZE = 300
# The fields TOFU's truth ratio reads: the paraphrased answer is the base on forget and
# retain, the answer itself on real authors and world facts.
PARAPHRASED = ("paraphrased_answer", "perturbed_answer")
PERTURBED = ("perturbed_answer",)


def _field_problem(records, fields) -> str | None:
    """Why TOFU's truth ratio cannot be computed on these records (None: it can)."""
    if not records:
        return "it holds no records"
    counts = set()
    for number, record in enumerate(records, start=1):
        for name in fields:
            value = record.get(name)
            if not value or (name == "perturbed_answer" and not isinstance(value, list)):
                return f"record {number} has no {name}" + (
                    " (a list of wrong answers)" if name == "perturbed_answer" else "")
        counts.add(len(record["perturbed_answer"]))
    if len(counts) > 1:
        return (f"its records have different numbers of perturbed answers "
                f"({', '.join(map(str, sorted(counts)))})")
    return None


@datasets.register("tofu", source="TOFU files in a local directory")
def load_tofu(path: str | None = None, forget: str = "forget10",
              eval_size: int = TOFU_EVAL_SIZE) -> TextBundle:
    """TOFU (Maini et al., 2024) from a local directory: JSON-lines files or a DatasetDict.

    Splits forget01/05/10 with retain99/95/90, scored as TOFU scores them.

    Training: the forget split comes from ``<forget>_perturbed`` when present (else
    ``<forget>``), the retain split from ``retain<100-k>``. Evaluation, as TOFU's: the first
    ``eval_size`` records (TOFU's 300; 0: every record) of the forget split
    (``forget_eval`` where that is fewer than all), of ``retain_perturbed``
    (``retain_eval``), of ``real_authors_perturbed`` (``real_entities``) and of
    ``world_facts_perturbed``; ``holdout<k>`` when present. An evaluation file may be
    replaced by its plain file when that carries the same fields (our export's files do);
    otherwise a missing one is an error naming it. Nothing is ``also_trained``: in TOFU the
    pretrained model already knows the world facts and real authors."""
    k = check_forget_choice(forget)
    if not path:
        raise UserError("the tofu data set needs the directory of your TOFU files: run the "
                        "benchmark as tofu-forget10[path=DIR] (see `unlearnbench data export`)")
    if eval_size < 0:
        raise UserError(f"eval_size={eval_size}: give the number of records scored per "
                        f"split (TOFU's is {TOFU_EVAL_SIZE}), or 0 to score every record")
    directory = _existing_directory(path)
    available = set(available_splits(directory))
    layout = "DatasetDict" if is_dataset_dict(directory) else "directory"
    retain = f"retain{100 - k}"

    def first(*names):
        return next((n for n in names if n in available), None)

    def missing(name: str) -> UserError:
        return UserError(f"the TOFU {layout} {directory} has no {name} split (no {name}.json "
                         f"or {name}.jsonl): put TOFU's {name} file there")

    training = {"forget": first(f"{forget}_perturbed", forget), "retain": first(retain)}
    for role, expected in (("forget", forget), ("retain", retain)):
        if training[role] is None:
            raise missing(expected)
    # role: (fields it needs, TOFU's file, then files that may carry the same fields)
    evaluation = {
        "forget_eval": (PARAPHRASED, f"{forget}_perturbed", forget),
        "retain_eval": (PARAPHRASED, "retain_perturbed", retain),
        # real_entities: the name our own export (generate_entities) gives this split.
        "real_entities": (PERTURBED, "real_authors_perturbed", "real_authors", "real_entities"),
        "world_facts": (PERTURBED, "world_facts_perturbed", "world_facts"),
    }
    holdout = first(f"holdout{k:02d}_perturbed", f"holdout{k:02d}")
    names = {*training.values(), *(n for _, *files in evaluation.values() for n in files
                                   if n in available)} | ({holdout} if holdout else set())
    read = read_tofu(directory, sorted(names))
    splits = {role: TextSplit(role, read[name].records, read[name].ids)
              for role, name in training.items()}
    for role in ("forget", "retain"):
        if len(splits[role]) == 0:
            raise UserError(f"{training[role]} in {directory} holds no records: check the file")
    if holdout:
        splits["holdout"] = TextSplit("holdout", read[holdout].records, read[holdout].ids)
    for role, (fields, tofu_file, *others) in evaluation.items():
        name = tofu_file if tofu_file in read else next(
            (n for n in others if n in read and not _field_problem(read[n].records, fields)),
            None)
        if name is None:
            raise missing(tofu_file)
        problem = _field_problem(read[name].records, fields)
        if problem:
            raise UserError(f"{name} in {directory} cannot be scored as TOFU scores it: "
                            f"{problem}; use TOFU's {name} file")
        count = eval_size or len(read[name])  # TOFU's protocol: the first records
        splits[role] = TextSplit(role, read[name].records[:count], read[name].ids[:count])
    # forget_eval is read from the forget split's own file: scored whole, it is forget itself
    if len(splits["forget_eval"]) == len(splits["forget"]):
        del splits["forget_eval"]
    try:
        return TextBundle(f"tofu-{forget}", splits, also_trained=(),
                          refusals=read_refusals(directory))
    except ValueError as exc:
        raise UserError(f"{directory}: {exc}; check that {training['forget']} and "
                        f"{retain} are disjoint")
