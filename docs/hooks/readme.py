"""mkdocs hook: the site's guide page (``index.md``) is the repository's README.md, so the guide is
written once. Its links into ``docs/`` become links between the site's pages; a link to another
file of the repository (outside ``docs/``) is shown as its path in code, as the site holds only
``docs/``; the changelog page is CHANGELOG.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\[([^\]]+)\]\((?!https?://|#|mailto:)([^)\s]+)\)")


def _site_link(match: re.Match[str]) -> str:
    text, target = match.group(1), match.group(2)
    if target.startswith("docs/"):
        return f"[{text}]({target.removeprefix('docs/')})"
    return text if text.startswith("`") else f"{text} (`{target}`)"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """The README as the guide page, the changelog as its page; other pages as they are."""
    source = {"index.md": "README.md", "changelog.md": "CHANGELOG.md"}.get(page.file.src_uri)
    if source is None:
        return markdown
    return LINK.sub(_site_link, (ROOT / source).read_text(encoding="utf-8"))
