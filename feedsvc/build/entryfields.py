"""What an article's entry says alike in more than one format: the names it is filed under,
its authors, the media type of its image."""

from __future__ import annotations

import mimetypes
from urllib.parse import urlsplit

from feedsvc.model import Article, Author


def filed_names(article: Article) -> list[str]:
    """Every name of its category paths, then its tags, each once in the order first met:
    RSS and Atom categories, JSON Feed tags."""
    names = [name for path in article.categories for name in path] + list(article.tags)
    return list(dict.fromkeys(names))


def image_type(url: str) -> str:
    """The media type of an image URL, guessed from its path."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith("image/") else "application/octet-stream"


def author_fields(author: Author, *, url: str, email: str | None = None) -> dict[str, str]:
    """An author as a format writes one: the name, then the email (where the format has a
    key for it) and the URL, when the author has them, under the format's key names."""
    fields = {"name": author.name}
    if email and author.email:
        fields[email] = author.email
    if author.url:
        fields[url] = author.url
    return fields
