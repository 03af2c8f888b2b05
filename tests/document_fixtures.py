"""Helpers shared by the document-corpus tests (``test_documents.py``,
``test_documents_books.py``): the invariants every MUSE-like bundle keeps, and a small
writer of R's serialization for the R data reader and the fake Jane Austen package."""
from __future__ import annotations

import gzip
import itertools
import json
import lzma
import struct
import zlib
from pathlib import Path

# ----------------------------------------------------------------------------- corpus invariants

def all_records_by_id(bundle) -> dict[int, str]:
    """id -> record (as JSON), checking that an id means the same record in every split."""
    seen = {}
    for split in bundle.splits.values():
        for identifier, record in zip(split.ids.tolist(), split.records):
            text = json.dumps(record, sort_keys=True)
            assert seen.setdefault(identifier, text) == text, f"id {identifier} is two records"
    return seen


def ids(bundle, name) -> set[int]:
    return set(bundle.splits[name].ids.tolist())


def check_corpus_invariants(bundle, chosen="forget"):
    """The properties every MUSE-like bundle has, whatever the corpus."""
    all_records_by_id(bundle)
    forget, retain, holdout = ids(bundle, "forget"), ids(bundle, "retain"), ids(bundle, "holdout")
    assert forget and retain and holdout
    assert not (forget & retain) and not (forget & holdout) and not (retain & holdout)
    # scale sets nested, the last one the whole forget set; sustain sets disjoint and covering.
    scale = [ids(bundle, f"scale_{k}") for k in range(1, 5)]
    sustain = [ids(bundle, f"sustain_{k}") for k in range(1, 5)]
    assert all(a < b for a, b in itertools.pairwise(scale))
    assert set().union(*sustain) == scale[-1]
    assert sum(len(s) for s in sustain) == len(scale[-1])
    assert all(sustain[k] == scale[k] - (scale[k - 1] if k else set()) for k in range(4))
    full_forget = scale[-1]
    assert forget == (full_forget if chosen == "forget" else ids(bundle, chosen))
    assert full_forget - forget <= retain  # forget documents not chosen are retained
    # verbatim pairs: prefix + continuation is the forget document, cut after ~60% of words
    source_text = {i: r["text"] for i, r in zip(bundle.splits["forget"].ids.tolist(),
                                                  bundle.splits["forget"].records)}
    verbatim = bundle.splits["verbatim"]
    assert {r["source"] for r in verbatim.records} == forget
    for record in verbatim.records:
        text = source_text[record["source"]]
        assert record["prefix"] + record["continuation"] == text
        share = len(record["prefix"].split()) / len(text.split())
        assert 0.5 < share < 0.7
    # knowledge questions: facts from forget documents only / retain documents only
    retain_role = retain - full_forget
    for record in bundle.splits["knowmem_forget"].records:
        assert set(record["sources"]) <= forget
    for record in bundle.splits["knowmem_retain"].records:
        assert set(record["sources"]) <= retain_role
    questions = [r["question"] for name in ("knowmem_forget", "knowmem_retain")
                 for r in bundle.splits[name].records]
    assert len(questions) == len(set(questions)) > 0
    # membership inference sets: equal sizes, members of forget / holdout
    assert len(bundle.splits["mia_forget"]) == len(bundle.splits["mia_holdout"]) > 0
    assert ids(bundle, "mia_forget") <= forget and ids(bundle, "mia_holdout") <= holdout
    assert bundle.also_trained == ()
    assert ids(bundle, "holdout").isdisjoint(bundle.training_split(True).ids.tolist())


# ----------------------------------------------------------------------------- R serialization
# A small writer of R's XDR serialization (format version 3), enough for character vectors,
# integer/logical/double vectors, lists and attributes.

def r_int(value: int) -> bytes:
    return struct.pack(">i", value)


def r_flags(kind: int, levels: int = 0, attr: bool = False, tag: bool = False) -> bytes:
    return r_int(kind | (attr << 9) | (tag << 10) | (levels << 12))


def r_char(value, encoding: str = "utf-8") -> bytes:
    if value is None:
        return r_flags(9) + r_int(-1)
    raw = value.encode(encoding)
    levels = 1 << 6 if raw.isascii() else (1 << 2 if encoding == "latin-1" else 1 << 3)
    return r_flags(9, levels) + r_int(len(raw)) + raw


class RWriter:
    def __init__(self):
        self.symbols: list[str] = []

    def symbol(self, name: str) -> bytes:
        if name in self.symbols:  # later uses of a symbol are references (REFSXP)
            return r_int(255 | ((self.symbols.index(name) + 1) << 8))
        self.symbols.append(name)
        return r_flags(1) + r_char(name)

    def attributes(self, attrs: dict) -> bytes:
        out = b""
        for name, value in attrs.items():
            out += r_flags(2, tag=True) + self.symbol(name) + value
        return out + r_flags(254)

    def strings(self, values, attrs=None, encoding="utf-8") -> bytes:
        body = r_flags(16, attr=bool(attrs)) + r_int(len(values))
        body += b"".join(r_char(v, encoding) for v in values)
        return body + (self.attributes(attrs) if attrs else b"")

    def ints(self, values, kind: int = 13) -> bytes:
        return r_flags(kind) + r_int(len(values)) + b"".join(
            r_int(-(2 ** 31) if v is None else int(v)) for v in values)

    def doubles(self, values) -> bytes:
        return r_flags(14) + r_int(len(values)) + b"".join(struct.pack(">d", v) for v in values)

    def named_list(self, items: dict) -> bytes:
        body = r_flags(19, attr=True) + r_int(len(items)) + b"".join(items.values())
        return body + self.attributes({"names": self.strings(list(items))})


def r_serialize(item: bytes, version: int = 3) -> bytes:
    header = b"X\n" + r_int(version) + r_int(0x040201) + r_int(0x030500)
    if version == 3:
        header += r_int(5) + b"UTF-8"
    return header + item


def write_lazyload_db(folder: Path, objects: dict[str, bytes], compressed: int = 1,
                      method: bytes = b"1") -> tuple[Path, Path]:
    """``Rdata.rdb`` / ``Rdata.rdx`` holding the given serialized objects."""
    blobs, positions, writer = b"", {}, RWriter()
    for name, item in objects.items():
        data = r_serialize(item)
        if compressed == 1:
            blob = struct.pack(">I", len(data)) + zlib.compress(data)
        else:
            packed = {b"1": zlib.compress, b"Z": lzma.compress, b"0": bytes}[method](data)
            blob = struct.pack(">I", len(data)) + method + packed
        positions[name] = writer.ints([len(blobs), len(blob)])
        blobs += blob
    flag = writer.ints([1], kind=10) if compressed == 1 else writer.ints([compressed])
    index = writer.named_list({"variables": writer.named_list(positions),
                               "references": r_flags(19) + r_int(0), "compressed": flag})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Rdata.rdb").write_bytes(blobs)
    (folder / "Rdata.rdx").write_bytes(gzip.compress(r_serialize(index)))
    return folder / "Rdata.rdb", folder / "Rdata.rdx"
