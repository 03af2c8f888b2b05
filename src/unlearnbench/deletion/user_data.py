"""A user's data for a deletion request, and the ids the request names.

- A classifier's data: an ``.npz`` file (read without pickle) with arrays ``x`` (inputs as the
  model takes them, one row per example), ``y`` (integer labels) and optionally ``ids`` (one
  per row, numbers or strings, unique).
- A language model's data: a JSONL file, one record per line: ``{"text": ...}``,
  ``{"question": ..., "answer": ...}`` (or ``{"prefix": ..., "continuation": ...}``), each
  with an optional ``"id"`` (all records or none).

Without ids, a record's id is its row number (0-based). ``--forget`` names ids as a comma
list or ``@FILE`` with one id per line.

A classifier's ``x`` must be scaled as the model was trained (a model trained on pixels in
[0, 1] takes [0, 1], not the raw 0-255 bytes). Nothing says how a user's model was trained,
so ``input_warnings`` applies the generic data sets' documented rule (``data/generic.py``):
the data's root mean square above 10 is off the order-one scale models train on, and the
holdout's is compared with the data's (at most 10 times apart either way)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.generic import input_range, input_range_message
from ..errors import UserError
from .user_model import one_line

TEXT_SHAPES = (("question", "answer"), ("text",), ("prefix", "continuation"))


@dataclass
class UserData:
    path: Path
    ids: list[str]                    # each record's id as text (row numbers when none given)
    has_ids: bool
    x: np.ndarray | None = None       # classifier data, as stored in the file
    y: np.ndarray | None = None
    records: list[dict] | None = None  # language data

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, forget_ids: list[str]) -> np.ndarray:
        """Row positions of ``forget_ids`` (sorted); an id not in the data is a user error."""
        index = {record_id: row for row, record_id in enumerate(self.ids)}
        unknown = [i for i in forget_ids if i not in index]
        if unknown:
            more = f" (nor {len(unknown) - 1} more of the {len(forget_ids)} given)" \
                if len(unknown) > 1 else ""
            known = (f"its ids are e.g. {', '.join(self.ids[:3])}" if self.has_ids else
                     f"it has no ids, so ids are row numbers 0..{len(self) - 1}")
            raise UserError(f"forget id {unknown[0]!r} is not in {self.path}{more}; {known}")
        positions = np.sort(np.array([index[i] for i in forget_ids], dtype=np.int64))
        if len(positions) == len(self):
            raise UserError(f"the forget ids name every record of {self.path}; keep at least one "
                            "record to retain")
        return positions

    def records_sha256(self, positions: np.ndarray) -> str:
        """SHA-256 of the records at ``positions`` (in data order). Arrays: each row's ``x``
        bytes then its ``y`` bytes as stored in the file (C order); text: each record's JSON
        with sorted keys, one per line."""
        digest = hashlib.sha256()
        for row in positions:
            if self.records is not None:
                digest.update(json.dumps(self.records[row], sort_keys=True,
                                         ensure_ascii=False).encode() + b"\n")
            else:
                digest.update(np.ascontiguousarray(self.x[row]).tobytes())
                digest.update(np.ascontiguousarray(self.y[row]).tobytes())
        return digest.hexdigest()


def input_warnings(data: UserData, holdout: UserData | None) -> list[dict]:
    """An ``inputs_off_scale`` warning (``verdicts`` form) for the data and for the holdout where
    their inputs are off scale (see the module docstring); none for text."""
    if data.x is None:
        return []
    found = []
    observed = input_range(data.x)
    message = input_range_message(f"--data {data.path.name} x", observed)
    if message:
        found.append({"code": "inputs_off_scale", "numbers": observed, "message": (
            f"{message}; or ignore this if the model was trained on these values as they are")})
    if holdout is not None:
        held = input_range(holdout.x)
        message = input_range_message(f"--holdout {holdout.path.name} x", held, observed,
                                      f"--data {data.path.name} x")
        if message:
            found.append({"code": "inputs_off_scale",
                          "numbers": {"holdout": held, "data": observed}, "message": message})
    return found


def load_user_data(path: str | Path, task: str, role: str = "data") -> UserData:
    """Read a classifier's ``.npz`` or a language model's ``.jsonl`` (``role`` names the option
    in messages: data or holdout)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"--{role} file {str(path)!r} does not exist")
    if task == "classification":
        if path.suffix != ".npz":
            raise UserError(f"--{role} {path}: a classifier takes an .npz file with arrays x and "
                            "y (and optionally ids)")
        return _load_arrays(path, role)
    if path.suffix not in (".jsonl", ".json"):
        raise UserError(f"--{role} {path}: a language model takes a JSONL file, one record per "
                        'line: {"text": ...} or {"question": ..., "answer": ...}')
    return _load_texts(path, role)


def _load_arrays(path: Path, role: str) -> UserData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:
        raise UserError(f"--{role} {path} is not a readable .npz file ({one_line(exc)}); "
                        "arrays holding Python objects are refused: save numbers or strings"
                        ) from None
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise UserError(f"--{role} {path} has no array {missing[0]!r}; it has "
                        f"{', '.join(arrays) or 'none'} (save it with np.savez(path, x=..., y=...))")
    x, y = arrays["x"], arrays["y"]
    if not np.issubdtype(x.dtype, np.number) or x.ndim < 2:
        raise UserError(f"--{role} {path}: x must be a numeric array with one row per example, "
                        f"got {x.dtype} of shape {x.shape}")
    for name, values in (("x", x), ("y", y)):
        if np.issubdtype(values.dtype, np.inexact) and values.ndim >= 1:
            _refuse_non_finite(values, name, path, role)
    if y.ndim != 1 or len(y) != len(x) or not (np.issubdtype(y.dtype, np.integer) or (
            np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))):
        raise UserError(f"--{role} {path}: y must hold one integer label per row of x "
                        f"({len(x)}), got {y.dtype} of shape {y.shape}")
    if len(x) == 0:
        raise UserError(f"--{role} {path} holds no examples")
    ids = arrays.get("ids")
    if ids is not None and (ids.ndim != 1 or len(ids) != len(x)):
        raise UserError(f"--{role} {path}: ids must hold one id per row of x ({len(x)}), got "
                        f"shape {ids.shape}")
    return UserData(path, _id_texts(ids, len(x), path), ids is not None, x=x, y=y)


def _refuse_non_finite(values: np.ndarray, name: str, path: Path, role: str) -> None:
    """Refuse NaN or infinite values, naming the rows (0-based) that hold them."""
    rows = np.flatnonzero(~np.isfinite(values).all(axis=tuple(range(1, values.ndim))))
    if len(rows):
        shown = ", ".join(str(row) for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise UserError(f"--{role} {path}: {name} holds NaN or infinite values in {len(rows)} "
                        f"row(s) (0-based: {shown}); fix or drop those rows and save the file "
                        "again")


def _load_texts(path: Path, role: str) -> UserData:
    records, ids = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"--{role} {path} line {number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{where} is not JSON ({one_line(exc)})") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: each line must be a JSON object")
        shape = next((s for s in TEXT_SHAPES if all(k in record for k in s)), None)
        if shape is None or not all(isinstance(record[k], str) for k in shape):
            raise UserError(f'{where}: a record needs text fields "text", or "question" and '
                            f'"answer" (or "prefix" and "continuation"); got {sorted(record)}')
        records.append(record)
        ids.append(record.get("id"))
    if not records:
        raise UserError(f"--{role} {path} holds no records")
    given = [i is not None for i in ids]
    if any(given) and not all(given):
        raise UserError(f"--{role} {path}: record {given.index(False) + 1} has no \"id\"; give "
                        "every record an id or none")
    return UserData(path, _id_texts(ids if all(given) else None, len(records), path), all(given),
                    records=records)


def _id_texts(ids, count: int, path: Path) -> list[str]:
    texts = [str(i) for i in ids] if ids is not None else [str(i) for i in range(count)]
    seen: set[str] = set()
    for text in texts:
        if text in seen:
            raise UserError(f"{path}: id {text!r} occurs more than once; ids must be unique")
        seen.add(text)
    return texts


def parse_forget(forget: str | Iterable) -> list[str]:
    """The ids of a request: ``"3,17,42"``, ``"@ids.txt"`` (one id per line) or a list."""
    if isinstance(forget, str):
        if forget.startswith("@"):
            path = Path(forget[1:]).expanduser()
            if not path.is_file():
                raise UserError(f"--forget file {str(path)!r} does not exist")
            items = path.read_text(encoding="utf-8").splitlines()
        else:
            items = forget.split(",")
    else:
        items = [str(i) for i in forget]
    ids = list(dict.fromkeys(i.strip() for i in items if i.strip()))
    if not ids:
        raise UserError("--forget names no ids; give them comma-separated or as @FILE with one "
                        "id per line")
    return ids
