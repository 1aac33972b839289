"""One object for equal values that many articles repeat (authors, category paths, tags).

Most articles repeat a few of them, and at 50,000 posts the copies are tens of MB.
"""

from __future__ import annotations

from typing import Any, TypeVar

from feedsvc.model import Article

_SHARED: dict[Any, Any] = {}
_T = TypeVar("_T")
_SHARED_LIMIT = 100_000


def share(value: _T) -> _T:
    """The one object equal to `value` that every article of this process holds. Bounded:
    emptied when it grows past _SHARED_LIMIT distinct values."""
    if len(_SHARED) > _SHARED_LIMIT:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)  # type: ignore[no-any-return]


SHARED_FIELDS = ("authors", "categories", "tags")
"""The fields of an Article whose values many articles repeat."""


def with_shared_values(article: Article) -> Article:
    """`article` holding the very authors, categories and tags objects equal ones of
    other articles hold: what a parse in this process gives, for a parse in another
    (the parse cache shares them as it loads: feedsvc.state.parsecache).

    Changed in place, on an article the caller has just received and no one else holds:
    the values are equal, so neither its equality nor its revision changes, and copying
    it would compute the revision again.
    """
    for name in SHARED_FIELDS:
        value = getattr(article, name)
        shared = share(value)
        if shared is not value:
            object.__setattr__(article, name, shared)
    return article
