"""The documentation is self-contained: its links resolve inside the repository, nothing points
to files outside it, no placeholder is left in it, and every registered method and metric has
an entry in docs/methods.md or docs/metrics.md."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from unlearnbench import registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = sorted(p for folder in ("src", "tests", "benchmarks")
                 for p in (ROOT / folder).rglob("*.py"))

# Paths of one machine, and work-tracker numbers, mean nothing to a reader of the repository.
OUTSIDE = re.compile(r"\.\./shared|/work/|\bissues?\s*\(?#?\d|\(issue\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOC_MENTION = re.compile(r"\bdocs/[\w.-]+\.md\b")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose_lines(path: Path):
    """(line number, line) of a Markdown file outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def test_relative_links_resolve_to_files_in_the_repository():
    dangling = []
    for doc in DOCS:
        for number, line in prose_lines(doc):
            for target in LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:|#", target):  # a URL or an anchor
                    continue
                path = (doc.parent / target.split("#")[0]).resolve()
                if not (path.is_file() and path.is_relative_to(ROOT)):
                    dangling.append(f"{rel(doc)}:{number}: {target}")
    assert not dangling


def test_docs_mentioned_in_the_code_exist():
    missing = [f"{rel(source)}: {name}" for source in SOURCES
               for name in DOC_MENTION.findall(source.read_text(encoding="utf-8"))
               if not (ROOT / name).is_file()]
    assert not missing


# A path into this repository as the docs write it: under one of its folders or the package's.
PACKAGE = ROOT / "src" / "unlearnbench"
OWN_FOLDERS = sorted({p.name for p in ROOT.iterdir() if p.is_dir()}
                     | {p.name for p in PACKAGE.iterdir() if p.is_dir()} - {"__pycache__"})
OWN_PATH = re.compile(r"(?<![\w/.-])((?:" + "|".join(map(re.escape, OWN_FOLDERS))
                      + r")/(?:[\w-]+/)*[\w-]+\.py)\b")
MODULE = re.compile(r"(?<![\w/.-])([\w-]+\.py)\b")
FILES = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if ".venv" not in p.parts}


def exists(name: str) -> bool:
    return any(f == name or f.endswith("/" + name) for f in FILES)


def test_paths_of_this_repository_named_in_the_docs_exist():
    # the architecture map names modules by their bare file names too, all of them its own
    named = [(rel(doc), name) for doc in DOCS for name in OWN_PATH.findall(doc.read_text())]
    architecture = ROOT / "docs" / "architecture.md"
    named += [(rel(architecture), name) for name in MODULE.findall(architecture.read_text())]
    assert [f"{doc}: {name}" for doc, name in named if not exists(name)] == []


def test_nothing_points_outside_the_repository():
    # This file spells the forbidden strings out in its pattern, so it is the one left out.
    files = [p for p in [*DOCS, *SOURCES] if p != Path(__file__).resolve()]
    found = [f"{rel(path)}:{number}: {line.strip()}"
             for path in files
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found


def test_no_placeholder_lines_in_the_docs():
    found = []
    for doc in DOCS:
        for number, line in prose_lines(doc):
            cells = line.strip().strip("|").split("|") if line.lstrip().startswith("|") else [line]
            if any(PLACEHOLDER.fullmatch(cell.strip()) for cell in cells):
                found.append(f"{rel(doc)}:{number}: {line.strip()}")
    assert not found


@pytest.mark.parametrize("kind, doc", [("methods", "docs/methods.md"),
                                       ("metrics", "docs/metrics.md")])
def test_every_registered_component_is_documented(kind, doc):
    path = ROOT / doc
    assert path.is_file(), f"{doc} is missing"
    text = path.read_text(encoding="utf-8")
    undocumented = [name for name in registry.ALL[kind].names() if f"`{name}`" not in text]
    assert not undocumented, f"{doc} has no entry for: {', '.join(undocumented)}"
