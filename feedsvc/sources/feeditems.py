"""A remote feed's document -> what it says of itself (Channel) and its entries (Items):
RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 through feedparser, JSON Feed 1.0/1.1 by hand.

feedparser is imported with the first document to parse: a server without remote
sources never needs it, and no start waits for it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urljoin

from feedsvc.content import html_to_text, plain_text, sanitize_html
from feedsvc.dates import from_utc_tuple, parse_feed_date
from feedsvc.errors import FetchError
from feedsvc.model import Author
from feedsvc.urls import is_absolute, to_uri


@dataclass(frozen=True, slots=True)
class Item:
    """One upstream entry, before it becomes an Article."""

    guid: str
    title: str
    link: str
    published: datetime | None
    updated: datetime | None
    authors: tuple[Author, ...]
    categories: tuple[str, ...]
    html: str
    summary: str
    image: str | None


@dataclass(frozen=True, slots=True)
class Channel:
    """What an upstream document says of itself, for its items' origin."""

    title: str = ""
    id: str = ""  # Atom <id>, JSON Feed feed_url (its name for itself); RSS has none
    home: str = ""  # its home page: RSS <link>, Atom rel="alternate", home_page_url
    # Not its own updated time: generators (RSSHub) set it to the time of each request,
    # which would change every republished entry at every fetch.


def parse_feed(body: bytes, content_type: str) -> tuple[Channel, list[Item]]:
    """What an RSS, Atom or JSON Feed document says of itself, and its items;
    FetchError when it is none of them."""
    stripped = body.lstrip()
    if "json" in content_type or stripped.startswith(b"{"):
        return _json_items(body)
    import feedparser  # type: ignore[import-untyped]  # noqa: PLC0415 (see the module docstring)

    parsed = feedparser.parse(body, response_headers={"content-type": content_type or "text/xml"})
    if not parsed.get("version"):
        reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise FetchError("not_a_feed", f"not a feed: {str(reason).splitlines()[0][:120]}")
    head = parsed.feed
    base = head.get("link", "")
    channel = Channel(
        title=plain_text(head.get("title", "")),
        id=_iri(head.get("id")),
        home=_absolute(base, ""),
    )
    return channel, [_xml_item(entry, base) for entry in parsed.entries]


def _xml_item(entry: Any, base: str) -> Item:
    link = _absolute(entry.get("link"), base)
    contents = entry.get("content") or []
    raw = contents[0].get("value", "") if contents else entry.get("summary", "")
    summary = html_to_text(entry.get("summary", "")) if contents else ""
    authors = tuple(
        Author(plain_text(a["name"]), a.get("email"), _absolute(a.get("href"), base) or None)
        for a in entry.get("authors", [])
        if a.get("name")
    )
    return Item(
        guid=entry.get("id") or link or plain_text(entry.get("title", "")),
        title=plain_text(entry.get("title", "")),
        link=link,
        published=from_utc_tuple(entry.get("published_parsed")),
        # dict.get: feedparser's own get() maps a missing updated to published, with a warning.
        updated=from_utc_tuple(dict.get(entry, "updated_parsed")),
        authors=authors,
        categories=tuple(
            t["term"].strip() for t in entry.get("tags", []) if t.get("term", "").strip()
        ),
        html=sanitize_html(raw, link or base),
        summary=summary,
        image=_xml_image(entry, link or base),
    )


def _xml_image(entry: Any, base: str) -> str | None:
    candidates: Iterable[dict[str, str]] = [
        *(e for e in entry.get("enclosures", []) if e.get("type", "").startswith("image/")),
        *entry.get("media_content", []),
        *entry.get("media_thumbnail", []),
    ]
    for candidate in candidates:
        url = candidate.get("href") or candidate.get("url")
        if url:
            return _absolute(url, base)
    return None


def _json_items(body: bytes) -> tuple[Channel, list[Item]]:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise FetchError("encoding", "not valid UTF-8") from None
    except ValueError as exc:
        raise FetchError("not_a_feed", f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise FetchError("not_a_feed", "not a JSON Feed (no jsonfeed.org version)")
    base = str(document.get("home_page_url") or document.get("feed_url") or "")
    channel = Channel(
        title=plain_text(str(document.get("title") or "")),
        home=_absolute(document.get("home_page_url"), ""),
        id=_absolute(document.get("feed_url"), ""),
    )
    items = document.get("items")
    items = items if isinstance(items, list) else []
    return channel, [_json_item(i, base) for i in items if isinstance(i, dict)]


def _json_item(item: dict[str, Any], base: str) -> Item:
    link = _absolute(item.get("url") or item.get("external_url"), base)
    raw_authors = item.get("authors") or (
        [item["author"]] if isinstance(item.get("author"), dict) else []
    )
    authors = tuple(
        Author(plain_text(str(a["name"])), None, _absolute(a.get("url"), base) or None)
        for a in raw_authors
        if isinstance(a, dict) and a.get("name")
    )
    html = item.get("content_html") or ""
    if not html and item.get("content_text"):
        html = "<p>" + escape(str(item["content_text"])).replace("\n\n", "</p><p>") + "</p>"
    return Item(
        guid=str(item.get("id") or link),
        title=plain_text(str(item.get("title") or "")),
        link=link,
        published=parse_feed_date(item.get("date_published")),
        updated=parse_feed_date(item.get("date_modified")),
        authors=authors,
        categories=tuple(str(t).strip() for t in item.get("tags") or [] if str(t).strip()),
        html=sanitize_html(str(html), link or base),
        summary=plain_text(str(item.get("summary") or "")),
        image=_absolute(item.get("image") or item.get("banner_image"), base) or None,
    )


def _absolute(url: object, base: str) -> str:
    if not isinstance(url, str) or not url.strip():
        return ""
    joined = urljoin(base, url.strip())
    return to_uri(joined) if is_absolute(joined) else ""


def _iri(value: object) -> str:
    """An upstream Atom id we can repeat in a `<source>`: an http(s) URL, a URN (RFC 8141)
    or a tag URI (RFC 4151); else "" (the source URL stands in). Validators check these
    schemes' syntax, and upstream feeds get them wrong (`urn:lab`)."""
    if not isinstance(value, str):
        return ""
    text = plain_text(value).strip()
    if any(c.isspace() for c in text):
        return ""
    if _URN.fullmatch(text) or _TAG.fullmatch(text):
        return text
    return to_uri(text) if text.startswith(("http://", "https://")) and is_absolute(text) else ""


_URN = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:\S+", re.IGNORECASE)
_TAG = re.compile(r"tag:[^,\s]+,\d{4}(?:-\d{2}(?:-\d{2})?)?:\S*")
