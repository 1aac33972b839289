"""Article bodies to HTML: Markdown rendering and the HTML/Markdown decision."""

from __future__ import annotations

import re
from html import unescape

from markdown_it import MarkdownIt

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})

# CommonMark with GFM tables and strikethrough; raw HTML inside Markdown is
# kept, as Hexo and Jekyll keep it.
_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_STARTS_WITH_TAG = re.compile(r"\A\s*<(?:!--|[a-zA-Z][a-zA-Z0-9-]*[\s/>])")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def render_body(body: str, suffix: str) -> str:
    """Return the HTML of an article body, by file suffix and by what the body is.

    `.md`/`.markdown` are Markdown; `.html`/`.htm` are HTML; anything else
    (Hexo scrapers write `.txt`) is HTML when it starts with a tag, else Markdown.
    """
    suffix = suffix.lower()
    if suffix in HTML_SUFFIXES or (suffix not in MARKDOWN_SUFFIXES and is_html(body)):
        return body.strip()
    return str(_markdown.render(body)).strip()


def is_html(body: str) -> bool:
    """True when the body already is HTML (it starts with a tag or a comment)."""
    return _STARTS_WITH_TAG.match(body) is not None


def strip_xml_illegal(text: str) -> str:
    """Remove characters that XML 1.0 §2.2 does not allow in a document."""
    return _XML_ILLEGAL.sub("", text)


_TAG = re.compile(r"<[^>]*>")
_BLOCK_END = re.compile(r"</(?:p|div|h[1-6]|li|blockquote|pre|tr)>|<br\s*/?>", re.IGNORECASE)


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, block ends as spaces, entities decoded."""
    text = _TAG.sub("", _BLOCK_END.sub(" ", html))
    return " ".join(unescape(text).split())


def summarize(html: str, limit: int = 280) -> str:
    """A plain-text excerpt of at most `limit` characters, cut at a word when it can be."""
    text = html_to_text(html)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"
