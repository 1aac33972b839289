"""Article bodies to safe HTML: Markdown rendering, sanitizing, absolute URLs, plain text."""

from __future__ import annotations

import re
from html import escape, unescape
from urllib.parse import urljoin

import nh3
from markdown_it_pyrs import MarkdownIt

from feedsvc.errors import MarkdownError
from feedsvc.urls import to_uri

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
MORE_MARKER = re.compile(r"<!--\s*more\s*-->", re.IGNORECASE)

# CommonMark with GFM tables and strikethrough, by markdown-it.rs (Rust; the same
# output as markdown-it-py in a fourteenth of the time). Raw HTML inside Markdown
# is kept, as Hexo and Jekyll keep it, and made safe by sanitize_html afterwards.
_markdown = MarkdownIt("commonmark").enable_many(["table", "strikethrough"])
_STARTS_WITH_TAG = re.compile(r"\A\s*<(?:!--|[a-zA-Z][a-zA-Z0-9-]*[\s/>])")
# XML 1.0 §2.2 Char: no C0 controls but tab/LF/CR, no surrogates, no U+FFFE/U+FFFF.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<!--.*?-->", re.DOTALL)
_BLOCK_END = re.compile(r"</(?:p|div|h[1-6]|li|blockquote|pre|tr)>|<br\s*/?>", re.IGNORECASE)
_FIRST_PARAGRAPH = re.compile(r"<p[\s>].*?</p>", re.IGNORECASE | re.DOTALL)

_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
_ALLOWED_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "a": {"href", "hreflang", "title"},
    "img": {"alt", "src", "width", "height", "title"},
    "*": {"lang", "dir"},
}


def render_body(body: str, suffix: str) -> str:
    """Return the (unsanitized) HTML of an article body, by file suffix and by what it is.

    `.md`/`.markdown` are Markdown; `.html`/`.htm` are HTML; anything else
    (Hexo scrapers write `.txt`) is HTML when it starts with a tag, else Markdown.
    """
    suffix = suffix.lower()
    if suffix in HTML_SUFFIXES or (suffix not in MARKDOWN_SUFFIXES and is_html(body)):
        return body.strip()
    try:
        return str(_markdown.render(body)).strip()
    except BaseException as exc:
        # markdown-it.rs panics on some texts (an index bug in its code-span scanner,
        # found by the hypothesis tests); pyo3 raises that as a BaseException.
        if not is_rust_panic(exc):
            raise
        raise MarkdownError("the Markdown renderer failed on this text") from None


def is_rust_panic(exc: BaseException) -> bool:
    """True for a panic inside a Rust extension (pyo3's PanicException, a BaseException)."""
    return type(exc).__name__ == "PanicException"


def plain_text_html(body: str) -> str:
    """A body as escaped paragraphs: what is published when it cannot be rendered."""
    paragraphs = (p.strip() for p in re.split(r"\n\s*\n", body))
    return "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs if p)


def is_html(body: str) -> bool:
    """True when the body already is HTML (it starts with a tag or a comment)."""
    return _STARTS_WITH_TAG.match(body) is not None


def sanitize_html(html: str, base_url: str) -> str:
    """Make untrusted HTML inert and self-contained.

    nh3 (the Ammonia sanitizer) keeps a safe subset: no script, style, iframe or
    object, no event handlers, only http, https and mailto URLs. Relative
    `href`/`src` are resolved against `base_url`, since a feed is read far from
    the page its links were written for.
    """

    def absolutize(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES:
            return to_uri(urljoin(base_url, value.strip()))
        return value

    return nh3.clean(
        strip_xml_illegal(html),
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        attribute_filter=absolutize,
        link_rel="noopener noreferrer",
        # Dropped with their content, not just unwrapped.
        clean_content_tags={"script", "style", "iframe", "object", "embed", "noscript"},
    ).strip()


def strip_xml_illegal(text: str) -> str:
    """Remove characters that XML 1.0 §2.2 does not allow in a document."""
    return _XML_ILLEGAL.sub("", text)


def plain_text(text: str) -> str:
    """A title or name as plain text: tags removed, entities decoded, whitespace collapsed."""
    return " ".join(unescape(_TAG.sub("", strip_xml_illegal(text))).split())


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, block ends as spaces, entities decoded."""
    return plain_text(_BLOCK_END.sub(" ", html))


def excerpt_html(html: str) -> str:
    """The lead of a body: the part before `<!-- more -->`, else its first paragraph."""
    marker = MORE_MARKER.search(html)
    if marker:
        return html[: marker.start()]
    paragraph = _FIRST_PARAGRAPH.search(html)
    return paragraph.group(0) if paragraph else html


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"
