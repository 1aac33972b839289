"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1) with the standard library, deterministically."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from feedsvc.build.entryfields import author_fields, filed_names
from feedsvc.build.membership import FeedNode, feed_home, feed_title
from feedsvc.config import Config
from feedsvc.model import Article, Origin
from feedsvc.urls import join_url

VERSION = "https://jsonfeed.org/version/1.1"
# JSON Feed 1.1 has no field for where a republished item came from; its extensions
# (keys starting with "_") carry it, with an `about` URL saying what the object means.
EXTENSION_ABOUT = "https://github.com/feedsvc/feedsvc#remote-feeds"


# The document is `json_head`, the items joined by ITEM_SEPARATOR, then `json_tail`:
# byte for byte what json.dumps(feed, ensure_ascii=False, indent=1) writes, so each
# item is serialized once and shared by every feed that lists it.
ITEM_SEPARATOR = b","
_ITEM_INDENT = "\n  "  # items sit two levels deep: {"items": [ ... ]}


def json_head(node: FeedNode, path: str, config: Config, next_url: str | None = None) -> bytes:
    """The feed object of a node's document at `path`, up to and including `"items": [`;
    keys in a fixed order.

    `next_url` (JSON Feed 1.1: the feed with the next items) is how a JSON feed with
    archives leads to them: the subscription feed to its newest archive, each archive
    to the month before, the chain RFC 5005 archives form in RSS and Atom.
    """
    site = config.site
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": feed_title(config, node),
        "home_page_url": feed_home(config, node),
        "feed_url": join_url(site.base_url, path),
        **({"next_url": next_url} if next_url else {}),
        "description": site.description,
        "language": site.language,
        "authors": [{"name": site.default_author}],
    }
    if site.icon:
        feed["icon"] = site.icon
        feed["favicon"] = site.icon
    if config.feeds.websub_hub:
        feed["hubs"] = [{"type": "WebSub", "url": config.feeds.websub_hub}]
    text = json.dumps(feed, ensure_ascii=False, indent=1)
    return (text.removesuffix("\n}") + ',\n "items": [').encode("utf-8")


def json_item(article: Article, html: str) -> bytes:
    """One item as it appears inside the items array; `html` is the full content, or ""
    for summaries only."""
    text = json.dumps(_item(article, html), ensure_ascii=False, indent=1)
    # JSON strings hold no raw newline, so every newline is between tokens.
    return (_ITEM_INDENT + text.replace("\n", _ITEM_INDENT)).encode("utf-8")


def json_tail(empty: bool) -> bytes:
    """What closes the document after the last item."""
    return b"]\n}\n" if empty else b"\n ]\n}\n"


def _item(article: Article, html: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": article.id,
        "url": article.link,
        "title": article.title,
    }
    if html:
        item["content_html"] = html
    else:
        # JSON Feed 1.1: an item has content_html or content_text.
        item["content_text"] = article.summary or article.title
    if article.summary:
        item["summary"] = article.summary
    if article.image:
        item["image"] = article.image
    item["date_published"] = _rfc3339(article.published)
    item["date_modified"] = _rfc3339(article.updated)
    item["authors"] = [author_fields(a, url="url") for a in article.authors]
    tags = filed_names(article)
    if tags:
        item["tags"] = tags
    if article.language:
        item["language"] = article.language
    if article.origin:
        item["_feedsvc"] = {"about": EXTENSION_ABOUT, "source": _source(article.origin)}
    return item


def _source(origin: Origin) -> dict[str, str]:
    """The upstream feed, in JSON Feed's own words for a feed."""
    source = {"feed_url": origin.feed_url}
    if origin.title:
        source["title"] = origin.title
    if origin.home:
        source["home_page_url"] = origin.home
    if origin.id != origin.feed_url:
        source["id"] = origin.id
    return source


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
