"""The README fits on a screen, and every relative link of README.md and docs/*.md reaches its file and heading."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)


def doc_pages() -> list[Path]:
    """README.md, CHANGELOG.md and the manual (docs/*.md; docs/_incoming holds notes not yet merged)."""
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFC", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` whose file, or heading, does not exist."""
    broken = []
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    return broken


def test_the_readme_fits_on_a_screen():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the detail into docs/"


def test_the_manual_has_its_pages():
    names = {p.name for p in doc_pages()}
    for page in ("index.md", "prepare.md", "train.md", "evaluate.md", "predict.md", "experiments.md",
                 "python-api.md", "architecture.md", "performance.md", "errors.md"):  # fmt: skip
        assert page in names
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert [p.name for p in doc_pages() if p.parent.name == "docs" and f"]({p.name})" not in index] == ["index.md"]


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_link_check_sees_a_broken_link(tmp_path):
    (tmp_path / "a.md").write_text("# Title (`x`)\n\n## Two\n\n[ok](#title-x) [file](b.md#two) [gone](c.md)\n")
    (tmp_path / "b.md").write_text("# B\n\n```\n## Two\n```\n")
    assert broken_links(tmp_path / "a.md") == ["b.md#two: no heading #two in b.md", "c.md: no such file"]
