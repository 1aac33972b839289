"""URL-safe slugs, permalinks and stable entry ids: every URL a feed contains derives from here."""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from datetime import datetime, tzinfo
from urllib.parse import quote, urlsplit, urlunsplit

# DESIGN.md: Hexo-style slugize. Unicode letters are kept; whitespace, the
# characters that break a path segment and control characters become "-".
_UNSAFE = re.compile(r'[\s/\\?#%"<>\x00-\x1f\x7f]+')
_REPEATS = re.compile(r"-{2,}")
_SCHEME = re.compile(r"\A[a-zA-Z][a-zA-Z0-9+.-]*:")
_PLACEHOLDER = re.compile(r":(year|month|day|slug|title|category|id)\b")


def slugize(name: str) -> str:
    """Make a category or tag name one URL path segment, the way Hexo's slugize does."""
    slug = _REPEATS.sub("-", _UNSAFE.sub("-", name)).strip("-")
    if slug in ("", ".", ".."):
        # Nothing printable is left: a short digest keeps the segment unique and safe.
        slug = "_" + hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    return slug


def entry_id(base_url: str, source: str, relpath: str) -> str:
    """The stable id of the article at `relpath` in `source`: a name-based UUID URN (RFC 9562)."""
    return uuid.uuid5(_namespace(base_url), f"{source}/{relpath}").urn


def explicit_id(base_url: str, value: str) -> str:
    """The id for a front-matter `id`/`guid`: kept when it is a URI, else made one."""
    if _SCHEME.match(value) and " " not in value:
        return to_uri(value)
    return uuid.uuid5(_namespace(base_url), f"id:{value}").urn


def _namespace(base_url: str) -> uuid.UUID:
    # Two sites that both hold `articles/hello.md` must not share entry ids.
    return uuid.uuid5(uuid.NAMESPACE_URL, base_url.rstrip("/"))


def expand_permalink(
    pattern: str,
    home: str,
    *,
    published: datetime,
    tz: tzinfo,
    slug: str,
    category: str,
    ident: str,
) -> str:
    """Expand a Hexo permalink pattern (`:year/:month/:day/:slug/`) into an absolute URL."""
    local = published.astimezone(tz)
    values = {
        "year": f"{local.year:04d}",
        "month": f"{local.month:02d}",
        "day": f"{local.day:02d}",
        "slug": slug,
        "title": slug,
        "category": category,
        "id": hashlib.sha1(ident.encode("utf-8"), usedforsecurity=False).hexdigest()[:12],
    }
    path = _PLACEHOLDER.sub(lambda m: values[m.group(1)], pattern)
    return join_url(home, path)


# An http(s) URL of unreserved and sub-delim characters only, without query or fragment.
_PLAIN = re.compile(r"https?://[A-Za-z0-9.:\-\[\]]+(/[A-Za-z0-9/:@!$&'()*+,;=\-._~]*)?")


@functools.lru_cache(maxsize=1 << 16)
def join_url(base: str, path: str) -> str:
    """Put `path` under the `base` URL (which may itself have a path) and make it a URI."""
    return to_uri(base.rstrip("/") + "/" + path.lstrip("/"))


def to_uri(iri: str) -> str:
    """Percent-encode what a URI may not hold (RFC 3987 §3.1), leaving valid URIs unchanged."""
    if _PLAIN.fullmatch(iri):  # nothing to encode, nothing to split: most feed URLs
        return iri
    parts = urlsplit(iri)
    netloc = parts.netloc
    try:
        host = parts.hostname or ""
        if host and not host.isascii():
            netloc = netloc.replace(host, host.encode("idna").decode("ascii"))
    except (UnicodeError, ValueError):
        pass
    safe = "/:@!$&'()*+,;=-._~%"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=safe),
            quote(parts.query, safe=safe + "?"),
            quote(parts.fragment, safe=safe + "?"),
        )
    )


def is_absolute(url: str) -> bool:
    """True for a URL with a scheme and a host."""
    parts = urlsplit(url)
    return bool(parts.scheme and parts.netloc)
