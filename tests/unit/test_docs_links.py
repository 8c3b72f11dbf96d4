"""The documentation holds together: every page of docs/ is linked from the README, and every
relative link of the README, docs/ and infra/README.md names a file that exists and, with a
`#fragment`, a heading of that file (as GitHub makes a heading's anchor)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
# `[text](target)`, and the `[text]: target` form of a reference definition.
INLINE_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", flags=re.MULTILINE)
FENCE = re.compile(r"^( *)(```|~~~).*?^\1\2", flags=re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md")), REPO_ROOT / "infra" / "README.md"]


def prose(text: str) -> str:
    """The text without code: a link or a heading in a code block or span is no link or heading."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(page: Path) -> list[str]:
    text = prose(page.read_text(encoding="utf-8"))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation but '-' and '_' dropped,
    spaces made hyphens (a link's text stands for the link, code spans for their text)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated one also as GitHub numbers it (`-1`, `-2`, ...)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#* *$", text, flags=re.MULTILINE):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        found.add(anchor if count == 0 else f"{anchor}-{count}")
        seen[anchor] = count + 1
    return found


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE)


def resolve(page: Path, target: str) -> tuple[Path, str]:
    """The file a relative link names (the page itself for `#fragment` alone) and its fragment."""
    path, _, fragment = target.partition("#")
    return (page if not path else (page.parent / path).resolve()), fragment


def test_the_pages_exist_and_docs_has_more_than_one():
    assert README.is_file()
    assert len(list(DOCS.glob("*.md"))) > 1


def test_every_docs_page_is_linked_from_the_readme():
    linked = {resolve(README, target)[0] for target in links(README) if is_relative(target)}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_names_a_file_and_heading_that_exist(page: Path):
    broken = []
    for target in links(page):
        if not is_relative(target):
            continue
        path, fragment = resolve(page, target)
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and (path.suffix != ".md" or fragment not in anchors(path)):
            broken.append(f"{target}: no heading #{fragment} in {path.name}")
    assert not broken, broken


def test_the_checker_sees_a_broken_link_a_missing_heading_and_a_good_one(tmp_path: Path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## `--config`: the rules\n", encoding="utf-8")
    page.write_text(
        "# Page\n\n[ok](other.md#--config-the-rules) [gone](missing.md) [bad](other.md#nowhere)\n"
        "`[in code](missing.md)`\n\n```sh\n# [in a block](missing.md)\n```\n[self](#page)\n",
        encoding="utf-8",
    )
    found = links(page)
    assert found == ["other.md#--config-the-rules", "missing.md", "other.md#nowhere", "#page"]
    assert resolve(page, found[0])[1] in anchors(tmp_path / "other.md")
    assert not resolve(page, found[1])[0].exists()
    assert resolve(page, found[2])[1] not in anchors(tmp_path / "other.md")
    assert "page" in anchors(page)
