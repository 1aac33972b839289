"""What the build makes of parts: served documents with their media types and validators."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

from feedsvc.build.gzparts import FRAME_BYTES, Part, View, trailer
from feedsvc.model import Document

FEED_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
MEDIA_TYPES = {fmt: f"{kind}; charset=utf-8" for fmt, kind in FEED_TYPES.items()}
HTML = "text/html; charset=utf-8"
OPML = "text/x-opml; charset=utf-8"
VIEW_NAME = "feed.html"  # each feed's HTML view, beside its feed.* documents


def document(
    path: str, media_type: str, parts: list[Part], last_modified: datetime, view: str | None = None
) -> Document:
    """Wrap built parts as a gzip document with a strong validator per coding (RFC 9110 §8.8.3).

    The tag is a digest of the pieces' digests and the trailer, which determine the gzip
    bytes and so the identity bytes too; the identity representation gets the bare tag,
    gzip the tag plus "-gz".
    """
    tail, size = trailer(parts)
    digests = tuple(part.digest for part in parts)
    tag = hashlib.sha256(b"".join(digests) + tail).hexdigest()[:32]
    pieces = tuple(part.deflated for part in parts)
    gzip_size = FRAME_BYTES + sum(map(len, pieces))
    return Document(
        path,
        media_type,
        pieces,
        tail,
        size,
        gzip_size,
        tag,
        f"{tag}-gz",
        last_modified,
        view,
        digests,
    )


def rebased_document(doc: Document, view: View) -> Document:
    """The document with its pieces read from where `view` has them (the same bytes)."""
    if not doc.digests:  # read from disk at a restart: its pieces are mapped already
        return doc
    found = [view(digest) for digest in doc.digests]
    pieces = tuple(v if v is not None else p for v, p in zip(found, doc.pieces, strict=True))
    return replace(doc, pieces=pieces)
