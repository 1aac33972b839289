"""The field table of a post: which front-matter keys give each Article field, read how."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urljoin

from feedsvc.content import plain_text
from feedsvc.dates import to_utc
from feedsvc.errors import ArticleError
from feedsvc.model import Author
from feedsvc.settings import SiteConfig
from feedsvc.sources.header import FrontMatter
from feedsvc.sources.shared import share
from feedsvc.urls import is_absolute, to_uri

_EMAIL = re.compile(r"[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+")


@dataclass(frozen=True, slots=True)
class PostContext:
    """What a post needs from outside itself: where it lives and the site's settings."""

    source: str
    relpath: str
    display_path: str
    site: SiteConfig
    tz: tzinfo
    fallback_date: datetime


# ---- the field table: output name, front-matter keys (first present wins), reader ----

Reader = Callable[[Any, PostContext], Any]


def _text(value: Any, ctx: PostContext) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return plain_text(str(value)) or None
    raise ValueError(f"expected text, got {type(value).__name__}")


def _date(value: Any, ctx: PostContext) -> datetime | None:
    return None if value is None else to_utc(value, ctx.tz)


def _flag(value: Any, ctx: PostContext) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def _names(value: Any, ctx: PostContext) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str | int | float) else value
    if not isinstance(items, list):
        raise ValueError(f"expected a name or a list of names, got {type(value).__name__}")
    names = (_text(item, ctx) for item in items)
    return tuple(dict.fromkeys(name for name in names if name))


def _categories(value: Any, ctx: PostContext) -> tuple[tuple[str, ...], ...]:
    """Hexo semantics: a list is one hierarchy; a list of lists is several."""
    if value is not None and not isinstance(value, str | list):
        raise ValueError(f"expected a name or a list of names, got {value!r}")
    if isinstance(value, list) and any(isinstance(v, list) for v in value):
        paths = [_names(v, ctx) for v in value]
    else:
        paths = [_names(value, ctx)]
    return tuple(dict.fromkeys(path for path in paths if path))


def _authors(value: Any, ctx: PostContext) -> tuple[Author, ...]:
    items = value if isinstance(value, list) else [value]
    authors = [_author(item, ctx) for item in items]
    return tuple(a for a in authors if a is not None)


def _author(value: Any, ctx: PostContext) -> Author | None:
    if isinstance(value, dict):
        name = _text(value.get("name"), ctx)
        email = _text(value.get("email"), ctx)
        url = _text(value.get("url"), ctx)
        # Feeds require a valid address and URI; a malformed one is dropped, not published.
        email = email if email and _EMAIL.fullmatch(email) else None
        url = to_uri(url) if url and is_absolute(url) else None
        return Author(name, email, url) if name else None
    name = _text(value, ctx)
    return Author(name) if name else None


def _url(value: Any, ctx: PostContext) -> str | None:
    url = _text(value, ctx)
    if url is not None and not is_absolute(url):
        raise ValueError(f"expected an absolute URL, got {url!r}")
    return url


def _as_is(value: Any, ctx: PostContext) -> Any:
    return value


# RFC 5646 (BCP 47) syntax, loosely: subtags of 1 to 8 letters or digits, the first letters.
# Whether the language exists is not checked: en-GB, zh-Hans-CN, x-klingon all pass.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def read_language(value: Any) -> tuple[str | None, str | None]:
    """(the tag, None) for a well-formed `lang` (`en_GB` is read as en-GB), (None, None)
    for none, (None, reason) for a malformed one, which the post is published without."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        kind = type(value).__name__
        return None, f"expected a language tag like en-GB, got {kind}; published without one"
    tag = value.strip().replace("_", "-")
    if not _LANGUAGE_TAG.fullmatch(tag):
        return None, f"not a BCP 47 language tag like en-GB: {value!r}; published without one"
    return share(tag), None


def _image(value: Any, ctx: PostContext) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("url") or value.get("src")
    url = _text(value, ctx)
    return to_uri(urljoin(ctx.site.home.rstrip("/") + "/", url)) if url else None


FIELDS: tuple[tuple[str, tuple[str, ...], Reader], ...] = (
    ("title", ("title",), _text),
    ("published", ("date",), _date),
    ("updated", ("updated", "last_modified_at", "lastmod"), _date),
    ("authors", ("author", "authors"), _authors),
    ("categories", ("categories", "category"), _categories),
    ("tags", ("tags", "keywords"), _names),
    ("id", ("id", "guid"), _text),
    ("slug", ("slug",), _text),
    ("permalink", ("permalink",), _text),
    ("link", ("link",), _url),
    ("summary", ("description", "excerpt", "summary"), _text),
    ("image", ("headimg", "thumbnail", "cover", "image", "images"), _image),
    ("language", ("lang",), _as_is),  # read_language: a bad tag is only a warning
    ("draft", ("draft",), _flag),
    ("hidden", ("hidden",), _flag),
    ("published_flag", ("published",), _flag),
)


def read_fields(front: FrontMatter, ctx: PostContext) -> dict[str, Any]:
    """Every FIELDS name -> its value read from the front matter; ArticleError at the
    line of the first key whose value is wrong."""
    values: dict[str, Any] = {}
    for name, keys, reader in FIELDS:
        key = next((k for k in keys if k in front.meta), None)
        try:
            values[name] = reader(front.meta[key] if key else None, ctx)
        except (ValueError, TypeError, OverflowError) as exc:
            line = front.lines.get(str(key), front.first_line)
            raise ArticleError(ctx.display_path, line, f"{key}: {exc}") from None
    return values
