"""What an article's entry says alike in more than one format: the names it is filed under,
its authors, the media type of its image."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

from feedsvc.model import Article, Author


def filed_names(article: Article) -> list[str]:
    """Every name of its category paths, then its tags, each once in the order first met:
    RSS and Atom categories, JSON Feed tags."""
    names = [name for path in article.categories for name in path] + list(article.tags)
    return list(dict.fromkeys(names))


# Image media types by file suffix. A table of our own rather than mimetypes, which
# reads the system's mime.types: Debian's knows .webp and .jxl, Python's own table does
# not, so a feed would say one thing on one machine and another elsewhere. (Loading
# mimetypes also cost the first render after a start 5 ms.)
_IMAGE_TYPES = {
    ".apng": "image/apng",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".ico": "image/vnd.microsoft.icon",
    ".jpe": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".jxl": "image/jxl",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
}


def image_type(url: str) -> str:
    """The media type of an image URL, by its path's suffix (any case)."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return _IMAGE_TYPES.get(suffix, "application/octet-stream")


def author_fields(author: Author, *, url: str, email: str | None = None) -> dict[str, str]:
    """An author as a format writes one: the name, then the email (where the format has a
    key for it) and the URL, when the author has them, under the format's key names."""
    fields = {"name": author.name}
    if email and author.email:
        fields[email] = author.email
    if author.url:
        fields[url] = author.url
    return fields
