"""The README and the documentation site point only at files that exist (no mkdocs run).

`make docs` (mkdocs build --strict) checks every link and anchor of the site; these checks are
the cheap part of it that runs with the unit tests: relative links in README.md and docs/*.md
lead to existing files, and mkdocs.yml's navigation lists exactly the pages in docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# [text](target) or [text](target "title"); images too. Reference-style links are not used.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")


def relative_links(markdown: str) -> list[str]:
    """Link targets of a Markdown text that point inside the repository (no URL, no bare anchor).

    Code blocks and inline code are skipped, and a `#anchor` suffix is removed from the target.
    """
    text = _CODE.sub("", _FENCE.sub("", markdown))
    targets = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, https:, mailto:, ... or an anchor on the same page
        targets.append(target.split("#", 1)[0])
    return targets


def broken_links(page: Path) -> list[str]:
    """Relative link targets of `page` that name no existing file or folder."""
    return [t for t in relative_links(page.read_text(encoding="utf-8"))
            if not (page.parent / t).exists()]


def nav_pages(nav: object) -> list[str]:
    """Every page path in an mkdocs `nav` (nested lists of {title: path or list})."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for entry in nav for p in nav_pages(entry)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return []


def test_relative_links_parser_skips_urls_anchors_and_code() -> None:
    text = ("[a](docs/x.md) [b](https://example.org/y.md) [c](#top) [d](docs/z.md#part)\n"
            "`[e](not/a/link.md)`\n```\n[f](in/code.md)\n```\n![g](img/p.png \"title\")\n")
    assert relative_links(text) == ["docs/x.md", "docs/z.md", "img/p.png"]


def test_readme_relative_links_exist() -> None:
    readme = ROOT / "README.md"
    assert relative_links(readme.read_text(encoding="utf-8")), "README.md links to no docs page"
    assert broken_links(readme) == []


def test_readme_keeps_the_two_commands_and_stays_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    commands = [line.split("#")[0].strip() for line in lines]
    assert "make demo" in commands and "make test" in commands
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_docs_relative_links_exist(page: Path) -> None:
    assert broken_links(page) == []


def test_mkdocs_nav_lists_exactly_the_pages_in_docs() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs_dir = ROOT / config.get("docs_dir", "docs")
    listed = nav_pages(config["nav"])
    assert listed, "mkdocs.yml has an empty nav"
    assert [p for p in listed if not (docs_dir / p).is_file()] == []
    assert len(listed) == len(set(listed)), "a page is listed twice in the nav"
    on_disk = {p.relative_to(docs_dir).as_posix() for p in docs_dir.rglob("*.md")}
    assert sorted(on_disk - set(listed)) == []


def test_readme_and_model_pages_name_every_registered_model() -> None:
    from movierec.models import available

    names = available()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    counts = re.findall(r"--models all\s+# every registered model \((\d+)\)", readme)
    assert counts == [str(len(names))], "the README's `--models all` comment gives another count"
    overview = (DOCS / "models" / "index.md").read_text(encoding="utf-8")
    assert [n for n in names if f"| `{n}` |" not in overview] == []
    assert [n for n in names if f"`{n}`" not in readme] == []
