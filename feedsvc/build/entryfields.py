"""What an article's entry says alike in every format: the names it is filed under and the
media type of its image."""

from __future__ import annotations

import mimetypes
from urllib.parse import urlsplit

from feedsvc.model import Article


def filed_names(article: Article) -> list[str]:
    """Every name of its category paths, then its tags, each once in the order first met:
    RSS and Atom categories, JSON Feed tags."""
    names = [name for path in article.categories for name in path] + list(article.tags)
    return list(dict.fromkeys(names))


def image_type(url: str) -> str:
    """The media type of an image URL, guessed from its path."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith("image/") else "application/octet-stream"
