"""HTML pages (the index and each feed's browser view) and the OPML list, as bytes."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.utils import format_datetime
from html import escape
from xml.sax.saxutils import quoteattr

from feedsvc.build.documents import FEED_TYPES
from feedsvc.model import Article

FORMAT_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}

_CSS = """
:root{color-scheme:light dark;--fg:#1d1d1f;--muted:#6e6e73;--line:#d2d2d7;--accent:#b3261e}
@media (prefers-color-scheme:dark){:root{--fg:#f5f5f7;--muted:#a1a1a6;--line:#424245}}
body{font:16px/1.6 system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC",sans-serif;
max-width:46rem;margin:2rem auto;padding:0 1rem;color:var(--fg)}
h1{font-size:1.6rem;line-height:1.3;margin:0 0 .5rem}h2{font-size:1.15rem;margin:0}
a{color:var(--accent)}.about,.meta,.muted{color:var(--muted)}.meta{font-size:.9rem;margin:.2rem 0}
.subscribe{list-style:none;padding:0}
.subscribe li{display:flex;gap:.5rem;align-items:center;margin:.3rem 0}
.subscribe span{min-width:5.5rem;font-weight:600}
.subscribe input{flex:1;font:inherit;padding:.2rem .4rem}
button{font:inherit;padding:.2rem .8rem;cursor:pointer}
article{border-top:1px solid var(--line);padding:1rem 0}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.35rem .5rem;border-top:1px solid var(--line)}
td.n{text-align:right}td.f{white-space:nowrap}
""".strip()
_JS = (
    "document.querySelectorAll('button[data-copy]').forEach(function(b){"
    "b.addEventListener('click',function(){var i=b.previousElementSibling;i.select();"
    "(navigator.clipboard?navigator.clipboard.writeText(b.dataset.copy):"
    "Promise.resolve(document.execCommand('copy'))).then(function(){b.textContent='Copied';});"
    "});});"
)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


# Only our own inline style and script may run: no other source, no framing, no forms.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_sha256(_CSS)}'; "
    f"script-src 'sha256-{_sha256(_JS)}'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Archive:
    """One month's archive of a feed: `YYYY-MM` and its (format, absolute URL) pairs."""

    month: str
    urls: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class FeedLinks:
    """What pages need to know about one feed node."""

    title: str
    home: str
    urls: Sequence[tuple[str, str]]  # (format, absolute URL)
    articles: tuple[Article, ...]  # the entries its feed documents hold
    updated: datetime | None
    view: str = ""  # absolute URL of its HTML view
    archives: Sequence[Archive] = ()  # newest first


AuthorUrl = Callable[[str], str]


def render_feed_view(
    feed: FeedLinks,
    *,
    description: str,
    language: str,
    index_url: str,
    tz: tzinfo,
    author_url: AuthorUrl,
) -> bytes:
    """The page a browser gets for a feed URL: what a feed is, its URLs, its entries (each
    author's name linked to the author's feed), its monthly archives."""
    alternates = _alternates(feed)
    subscribe = "".join(
        f"<li><span>{FORMAT_LABELS[fmt]}</span>"
        f'<input readonly value="{_e(url)}" aria-label="{FORMAT_LABELS[fmt]} feed address">'
        f'<button type="button" data-copy="{_e(url)}">Copy</button></li>\n'
        for fmt, url in feed.urls
    )
    entries = "".join(_entry(article, tz, author_url) for article in feed.articles)
    entries = entries or '<p class="muted">No articles yet.</p>\n'
    body = (
        f"<header>\n<h1>{_e(feed.title)}</h1>\n"
        '<p class="about">This is a web feed. Copy its address into a feed reader '
        "(NetNewsWire, Feedly, Miniflux, Thunderbird, newsboat…) to follow new articles "
        "as they are published.</p>\n"
        f'<ul class="subscribe">\n{subscribe}</ul>\n'
        f'<p class="muted">{_e(description)} · <a href="{_e(feed.home)}">Website</a> · '
        f'<a href="{_e(index_url)}">All feeds</a></p>\n</header>\n<main>\n'
        f"{entries}</main>\n{_archive_list(feed.archives)}"
    )
    return _page(feed.title, language, alternates, body)


def _archive_list(archives: Sequence[Archive]) -> str:
    """The feed's monthly archives (RFC 5005), newest first; nothing without archives."""
    if not archives:
        return ""
    items = "".join(
        f"<li>{archive.month}: "
        + " ".join(f'<a href="{_e(url)}">{FORMAT_LABELS[fmt]}</a>' for fmt, url in archive.urls)
        + "</li>\n"
        for archive in archives
    )
    return f'<section id="archives">\n<h2>Archives</h2>\n<ul>\n{items}</ul>\n</section>\n'


def render_index(
    site_title: str,
    feeds: Sequence[FeedLinks],
    *,
    description: str,
    language: str,
    tz: tzinfo,
) -> bytes:
    """`/`: every feed with its item count and last update (and one link to its archives,
    when it has any); autodiscovery for the site feed."""
    alternates = _alternates(feeds[0])
    rows = "".join(
        f'<tr><td>{_e(feed.title)}</td><td class="f">'
        + " ".join(f'<a href="{_e(url)}">{FORMAT_LABELS[fmt]}</a>' for fmt, url in feed.urls)
        + (f' · <a href="{_e(feed.view)}#archives">archives</a>' if feed.archives else "")
        + f'</td><td class="n">{len(feed.articles)}</td>'
        f"<td>{_when(feed.updated, tz)}</td></tr>\n"
        for feed in feeds
    )
    body = (
        f'<header>\n<h1>{_e(site_title)}</h1>\n<p class="about">{_e(description)}</p>\n'
        '<p class="muted">Every feed below can be added to a feed reader; '
        '<a href="feeds.opml">feeds.opml</a> lists them all for import.</p>\n</header>\n<main>\n'
        "<table>\n<thead><tr><th>Feed</th><th>Formats</th><th>Items</th><th>Updated</th></tr>"
        f"</thead>\n<tbody>\n{rows}</tbody>\n</table>\n</main>\n"
    )
    return _page(site_title, language, alternates, body)


def render_opml(site_title: str, owner: str, feeds: Sequence[FeedLinks]) -> bytes:
    """OPML 2.0 (http://opml.org/spec2.opml): one outline per feed, its first format."""
    newest = max((f.updated for f in feeds if f.updated), default=None)
    modified = (
        f"    <dateModified>{format_datetime(newest, usegmt=True)}</dateModified>\n"
        if newest
        else ""
    )
    outlines = "".join(
        f'    <outline type="rss" text={quoteattr(feed.title)} title={quoteattr(feed.title)} '
        f"xmlUrl={quoteattr(feed.urls[0][1])} htmlUrl={quoteattr(feed.home)}/>\n"
        for feed in feeds
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">\n  <head>\n'
        f"    <title>{_x(site_title)}</title>\n"
        f"{modified}"
        f"    <ownerName>{_x(owner)}</ownerName>\n  </head>\n  <body>\n"
        f"{outlines}  </body>\n</opml>\n"
    ).encode()


def _alternates(feed: FeedLinks) -> str:
    """`<link rel="alternate">` autodiscovery of every format of a feed."""
    return "".join(
        f'<link rel="alternate" type="{FEED_TYPES[fmt]}" title="{_e(feed.title)} '
        f'({FORMAT_LABELS[fmt]})" href="{_e(url)}">\n'
        for fmt, url in feed.urls
    )


def _entry(article: Article, tz: tzinfo, author_url: AuthorUrl) -> str:
    authors = ", ".join(_author(a.name, author_url(a.name)) for a in article.authors)
    return (
        f'<article>\n<h2><a href="{_e(article.link)}">{_e(article.title)}</a></h2>\n'
        f'<p class="meta"><time datetime="{article.published.isoformat()}">'
        f"{_when(article.published, tz)}</time> · {authors}</p>\n"
        f"<p>{_e(article.summary)}</p>\n</article>\n"
    )


@functools.lru_cache(maxsize=4096)
def _author(name: str, url: str) -> str:
    return f'<a href="{_e(url)}" rel="author">{_e(name)}</a>'


def _page(title: str, language: str, head: str, body: str) -> bytes:
    return (
        f'<!doctype html>\n<html lang="{_e(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n{head}<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}<script>{_JS}</script>\n</body>\n</html>\n"
    ).encode()


def _when(moment: datetime | None, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if moment else "—"


def _e(text: str) -> str:
    return escape(text, quote=True)


def _x(text: str) -> str:
    return escape(text, quote=False)
