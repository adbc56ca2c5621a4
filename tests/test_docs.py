"""The docs keep up with the code: every hook is documented, every page is in the site's nav."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import portarun.hookspecs as hookspecs

ROOT = Path(__file__).resolve().parent.parent


def test_every_hook_is_documented() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    hooks = [name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("portarun_")]
    assert hooks
    for name in hooks:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"## `{name}({params})`" in text, f"docs/hooks.md lacks a section for {name}({params})"


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    listed = set(re.findall(r":\s*(\S+\.md)\s*$", nav, re.M))
    assert pages == listed, f"not in nav: {sorted(pages - listed)}; missing files: {sorted(listed - pages)}"
