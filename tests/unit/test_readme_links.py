"""README and docs links work from a clone: relative targets exist inside the repository."""

from __future__ import annotations

import re

import pytest

from asmspotter.settings import PROJECT_ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]


def anchors(text: str) -> set[str]:
    """GitHub's anchors of the document's headings."""
    found = set()
    for heading in re.findall(r"^#+\s+(.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_resolve_inside_the_repository(document):
    text = document.read_text()
    root = PROJECT_ROOT.resolve()
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in anchors(text), f"{document.name}: no heading for #{anchor}"
            continue
        resolved = (document.parent / path).resolve()
        assert resolved.is_relative_to(root), f"{document.name}: {target} leaves the repository"
        assert resolved.exists(), f"{document.name}: {target} does not exist"


def test_readme_names_no_path_outside_the_repository():
    assert "../shared" not in (PROJECT_ROOT / "README.md").read_text()
