"""The docs stay true to the repository: every script they name exists, the README's links resolve
(on GitHub too), the README stays an entry point, and every page is in the site's navigation.

`mkdocs build --strict` (make test) checks the links between docs pages and the API pages; these
checks cover what it cannot see: the README (outside docs/) and paths to repository files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
README_MAX_LINES = 160

# A repository file named in prose or code: sweeps/tft.py, analysis/best.py, tests/fifth_model.py …
# (placeholders such as sweeps/<model>.py do not match).
FILE = re.compile(r"(?<![\w./-])((?:sweeps|analysis|bench|trainables|search_spaces|tests)/[\w/]+\.(?:py|json))\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading (as mkdocs.yml's toc slugify, pymdownx.slugs case=lower)."""
    text = re.sub(r"`|\*\*|\*|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            found.add(github_slug(m.group(2)))
    return found


def test_docs_pages_exist():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    for page in ("index.md", "sweeping.md", "protocol.md", "verdicts.md", "analysis.md", "clusters.md",
                 "kubernetes.md", "forecasters.md", "benchmarks.md", "adding-a-model.md", "api/index.md"):  # fmt: skip
        assert page in names, f"docs/{page} is missing"


@pytest.mark.parametrize("doc", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_file_a_page_names_exists(doc):
    missing = sorted({m for m in FILE.findall(doc.read_text(encoding="utf-8")) if not (ROOT / m).is_file()})
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {missing}"


def test_the_readme_stays_an_entry_point():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move the detail into docs/"
    text = "\n".join(lines)
    for command in ("make demo", "make test", "make docs"):
        assert command in text


def test_the_readme_links_resolve_on_github():
    """Relative links to files (and to headings in them) exist: the README is read on GitHub."""
    bad = []
    for target in LINK.findall(README.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else README
        if not file.exists():
            bad.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, bad


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w/.-]+\.md)\s*$", nav, flags=re.M))
    unlisted = sorted(p.relative_to(DOCS).as_posix() for p in PAGES if p.relative_to(DOCS).as_posix() not in listed)
    assert not unlisted, f"pages missing from mkdocs.yml's nav: {unlisted}"


def test_api_pages_name_modules_that_exist():
    """What mkdocstrings renders (`::: package.module[.Object]`) is a module file of the repository."""
    missing = []
    for page in (DOCS / "api").glob("*.md"):
        for ident in re.findall(r"^:::\s*([\w.]+)", page.read_text(encoding="utf-8"), flags=re.M):
            parts = ident.split(".")
            if not any((ROOT / Path(*parts[:n])).with_suffix(".py").is_file() for n in range(len(parts), 0, -1)):
                missing.append(f"{page.name}: {ident}")
    assert not missing, missing
