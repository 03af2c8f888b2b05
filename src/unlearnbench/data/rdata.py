"""A reader for R's serialization format, enough for data packages (character vectors, lists).

R installs a package's data as a lazy-load database: ``Rdata.rdx`` is a compressed serialized
index (a named list: ``variables`` maps each object's name to its (offset, length) in
``Rdata.rdb``; ``compressed`` says how the blobs are compressed) and ``Rdata.rdb`` is the
blobs: 4 bytes big-endian of uncompressed length, then the compressed serialization (zlib
for ``compressed = TRUE``; for 2 and 3 one more byte names the method: '0' none, '1' zlib,
'2' bzip2, 'Z' xz). A serialization starts with ``X\\n`` (XDR, big-endian), the format
version (2 or 3), two R versions, and for version 3 the native encoding; then one item.

An item starts with an int of flags: the type (low 8 bits), "is object" (bit 8), "has
attributes" (bit 9), "has tag" (bit 10) and the general-purpose levels (bits 12+, which hold
a string's encoding). This module reads:

- NULL -> ``None``; character vectors -> ``RVector`` of ``str`` (``None`` for NA);
- logical, integer, double and raw vectors -> ``RVector`` of bool/int/float (``None`` for NA);
- lists (VECSXP, EXPRSXP) -> ``RVector`` of items; symbols -> ``RSymbol`` (a ``str``);
- pairlists -> ``RPairlist``: a list of (tag or ``None``, value); attributes become a
  ``dict`` on the vector (``names``, ``class``...);
- references to earlier symbols, and the special environments (global, base, empty) as
  markers.

Anything else (closures, environments, ALTREP compact vectors, bytecode...) raises
``UserError`` naming the type: data packages of text do not need them. Only ``X`` (XDR)
streams are read; ASCII and native-binary serializations are refused."""
from __future__ import annotations

import bz2
import gzip
import lzma
import math
import struct
import zlib
from pathlib import Path

from ..errors import UserError

NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP = 0, 1, 2, 9, 10, 13, 14
CPLXSXP, STRSXP, VECSXP, EXPRSXP, RAWSXP = 15, 16, 19, 20, 24
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP = 255, 254, 253, 252, 251
BASENAMESPACE_SXP, EMPTYENV_SXP, BASEENV_SXP = 250, 242, 241
NA_INTEGER = -(2 ** 31)
LATIN1_MASK, UTF8_MASK, BYTES_MASK = 1 << 2, 1 << 3, 1 << 1
TYPE_NAMES = {3: "closure", 4: "environment", 5: "promise", 6: "language object",
              7: "special function", 8: "builtin function", 17: "dots", 18: "any",
              21: "bytecode", 22: "external pointer", 23: "weak reference", 25: "S4 object",
              238: "ALTREP vector", 239: "attributed pairlist", 240: "attributed language object",
              244: "generic reference", 245: "class reference", 246: "class reference",
              247: "persistent reference", 248: "package environment", 249: "namespace"}
SPECIALS = {GLOBALENV_SXP: "<globalenv>", UNBOUNDVALUE_SXP: "<unbound>",
            MISSINGARG_SXP: "<missing>", BASENAMESPACE_SXP: "<base namespace>",
            EMPTYENV_SXP: "<emptyenv>", BASEENV_SXP: "<baseenv>"}


class RVector(list):
    """An R vector or list: its elements, its R type name and its attributes."""

    def __init__(self, values=(), rtype: str = "list", attributes: dict | None = None):
        super().__init__(values)
        self.rtype = rtype
        self.attributes = attributes or {}

    def names(self) -> list | None:
        return self.attributes.get("names")

    def as_dict(self) -> dict:
        """A named vector or list as {name: element} (every element needs a name)."""
        names = self.names()
        if names is None or len(names) != len(self) or any(n is None for n in names):
            raise UserError("an R object was expected to be a named list and is not")
        return dict(zip(names, self))


class RSymbol(str):
    """An R symbol (a name)."""


class RPairlist(list):
    """An R pairlist: (tag or None, value) pairs."""


class _Reader:
    def __init__(self, data: bytes, source: str):
        self.data, self.pos, self.source = data, 0, source
        self.refs: list = []
        self.encoding = "utf-8"

    def fail(self, what: str):
        raise UserError(f"{self.source}: {what}; it is not an R data file this reader "
                        "understands (character vectors and lists)")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"truncated at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:  # a long vector: two more ints, upper and lower 32 bits
            upper, lower = struct.unpack(">II", self.take(8))
            n = (upper << 32) | lower
        if n < 0:
            self.fail(f"negative length {n}")
        return n

    def header(self) -> None:
        magic = self.take(2)
        if magic != b"X\n":
            kind = {b"A\n": "ASCII", b"B\n": "native binary"}.get(magic)
            self.fail(f"{kind} serialization is not supported" if kind else
                      "no R serialization header (expected 'X\\n')")
        version = self.int()
        self.int(), self.int()  # the writer's R version and the oldest R that reads it
        if version == 3:
            self.encoding = self.take(self.int()).decode("ascii", "replace")
        elif version != 2:
            self.fail(f"serialization format version {version} is unknown")

    def item(self):
        flags = self.int()
        kind, levels = flags & 0xFF, flags >> 12
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == NILVALUE_SXP or kind == NILSXP:
            return None
        if kind in SPECIALS:
            return SPECIALS[kind]
        if kind == REFSXP:
            index = flags >> 8 or self.int()
            if not 1 <= index <= len(self.refs):
                self.fail(f"reference {index} to an object not read yet")
            return self.refs[index - 1]
        if kind == SYMSXP:
            symbol = RSymbol(self.item() or "")
            self.refs.append(symbol)
            return symbol
        if kind == LISTSXP:
            return self.pairlist(has_attr, has_tag)
        if kind == CHARSXP:
            return self.string(levels)
        if kind in (LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP, VECSXP, EXPRSXP, RAWSXP):
            vector = self.vector(kind)
            if has_attr:
                vector.attributes = self.attributes()
            return vector
        self.fail(f"R type {TYPE_NAMES.get(kind, kind)} is not supported")

    def pairlist(self, has_attr: bool, has_tag: bool) -> RPairlist:
        # A pairlist is a chain of cells: [attributes] [tag] value, then the rest of the chain.
        out = RPairlist()
        while True:
            if has_attr:
                self.item()  # attributes of a pairlist cell: not needed
            tag = self.item() if has_tag else None
            out.append((None if tag is None else str(tag), self.item()))
            flags = self.int()
            kind = flags & 0xFF
            if kind in (NILVALUE_SXP, NILSXP):
                return out
            if kind != LISTSXP:
                self.fail("a pairlist continues with something other than a pairlist")
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))

    def attributes(self) -> dict:
        pairs = self.item()
        if not isinstance(pairs, RPairlist):
            self.fail("attributes are not a pairlist")
        return {tag: (list(value) if isinstance(value, RVector) and value.rtype == "character"
                      else value) for tag, value in pairs}

    def string(self, levels: int) -> str | None:
        n = self.int()
        if n == -1:
            return None  # NA_character_
        raw = self.take(n)
        if levels & LATIN1_MASK:
            return raw.decode("latin-1")
        if levels & BYTES_MASK:
            return raw.decode("latin-1")
        encoding = "utf-8" if levels & UTF8_MASK else self.encoding
        try:
            return raw.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            return raw.decode("latin-1")

    def vector(self, kind: int) -> RVector:
        n = self.length()
        if kind == STRSXP:
            values = []
            for _ in range(n):
                flags = self.int()
                if flags & 0xFF != CHARSXP:
                    self.fail("a character vector holds something other than strings")
                values.append(self.string(flags >> 12))
            return RVector(values, "character")
        if kind in (VECSXP, EXPRSXP):
            return RVector([self.item() for _ in range(n)], "list")
        if kind == RAWSXP:
            return RVector(self.take(n), "raw")
        if kind in (LGLSXP, INTSXP):
            ints = struct.unpack(f">{n}i", self.take(4 * n))
            if kind == LGLSXP:
                return RVector([None if v == NA_INTEGER else bool(v) for v in ints], "logical")
            return RVector([None if v == NA_INTEGER else v for v in ints], "integer")
        if kind == REALSXP:
            values = struct.unpack(f">{n}d", self.take(8 * n))
            return RVector([None if math.isnan(v) else v for v in values], "double")
        values = struct.unpack(f">{2 * n}d", self.take(16 * n))  # complex
        return RVector([complex(a, b) for a, b in zip(values[::2], values[1::2])], "complex")


def unserialize(data: bytes, source: str = "R data") -> object:
    """The R object in an uncompressed XDR serialization (``X\\n`` header first)."""
    reader = _Reader(bytes(data), source)
    reader.header()
    value = reader.item()
    return value


def decompress_file_bytes(data: bytes, source: str) -> bytes:
    """An ``.rds``/``.rdx`` file's bytes uncompressed (gzip, bzip2, xz or none)."""
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(data)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise UserError(f"{source} is corrupt ({exc})") from exc
    return data


def read_rds(path: str | Path) -> object:
    """The object saved in an ``.rds`` file (``saveRDS``) or an ``.rdx`` index."""
    path = Path(path)
    return unserialize(decompress_file_bytes(path.read_bytes(), str(path)), str(path))


def _blob(rdb: bytes, offset: int, length: int, compressed, source: str) -> bytes:
    if offset < 0 or length < 5 or offset + length > len(rdb):
        raise UserError(f"{source}: the index points outside the file (offset {offset}, "
                        f"length {length}, file size {len(rdb)})")
    chunk = rdb[offset:offset + length]
    size, body = struct.unpack(">I", chunk[:4])[0], chunk[4:]
    method = "1"
    if compressed in (2, 3):
        method, body = chr(body[0]), body[1:]
    elif compressed not in (True, 1):
        raise UserError(f"{source}: unknown lazy-load compression {compressed!r}")
    try:
        if method == "1":
            out = zlib.decompress(body)
        elif method == "2":
            out = bz2.decompress(body)
        elif method == "Z":
            out = lzma.decompress(body)
        elif method == "0":
            out = body
        else:
            raise UserError(f"{source}: unknown compression method {method!r}")
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise UserError(f"{source}: a compressed object is corrupt ({exc})") from exc
    if len(out) != size:
        raise UserError(f"{source}: an object is {len(out)} bytes uncompressed, the file says "
                        f"{size}")
    return out


def read_lazyload_db(rdb: str | Path, rdx: str | Path | None = None) -> dict[str, object]:
    """Every variable of an R lazy-load database (``X.rdb`` + ``X.rdx``) as {name: object}."""
    rdb = Path(rdb)
    rdx = Path(rdx) if rdx is not None else rdb.with_suffix(".rdx")
    for path in (rdb, rdx):
        if not path.is_file():
            raise UserError(f"{path} does not exist: an R lazy-load database needs both the "
                            ".rdb and the .rdx file")
    index = read_rds(rdx)
    if not isinstance(index, RVector) or index.names() is None:
        raise UserError(f"{rdx} is not a lazy-load index (a named list)")
    index = index.as_dict()
    if "variables" not in index:
        raise UserError(f"{rdx} is not a lazy-load index (no 'variables')")
    compressed = index.get("compressed")
    compressed = compressed[0] if isinstance(compressed, RVector) and compressed else True
    variables = index["variables"]
    if not isinstance(variables, RVector):
        raise UserError(f"{rdx}: 'variables' is not a list")
    data = rdb.read_bytes()
    out = {}
    for name, where in (variables.as_dict().items() if len(variables) else ()):
        if not (isinstance(where, RVector) and len(where) == 2):
            raise UserError(f"{rdx}: the position of {name!r} is not (offset, length)")
        offset, length = (int(v) for v in where)
        source = f"{rdb} ({name})"
        out[name] = unserialize(_blob(data, offset, length, compressed, source), source)
    return out
