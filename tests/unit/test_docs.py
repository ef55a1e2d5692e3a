"""The README is a front door: every page it and the docs link to exists, with the heading a
link names, and every page under docs/ is reachable from the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
]
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    heads = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def _links(page: Path) -> list[tuple[Path, str | None]]:
    found = []
    for target, anchor in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        found.append(((page.parent / target).resolve() if target else page, anchor or None))
    return found


def test_every_link_of_the_readme_and_the_docs_leads_somewhere():
    broken = []
    for page in PAGES:
        for target, anchor in _links(page):
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target.relative_to(ROOT)}")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.relative_to(ROOT)}: {target.relative_to(ROOT)}#{anchor}")
    assert broken == []


def test_every_page_of_the_docs_is_linked_from_the_readme():
    linked = {target for target, _ in _links(ROOT / "README.md")}
    assert [p.name for p in PAGES[1:] if p not in linked] == []
