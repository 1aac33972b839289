"""Golden pairs: each file in data/posts and the article it must give (data/posts/*.json).

`make golden` (UPDATE_GOLDEN=1) rewrites the expectations; review the diff before committing.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from feedsvc.dates import load_timezone
from feedsvc.model import Article
from feedsvc.sources.fields import PostContext
from feedsvc.sources.post import parse_post_bytes

from tests.support.posts import CONFIG, MTIME, POSTS


def context(relpath: str) -> PostContext:
    site = CONFIG.site
    return PostContext("articles", relpath, relpath, site, load_timezone(site.timezone), MTIME)


def as_json(article: Article | None, problems: tuple[Any, ...]) -> dict[str, Any]:
    result: dict[str, Any] = {"problems": [str(p) for p in problems]}
    if article is not None:
        result["article"] = {
            "id": article.id,
            "title": article.title,
            "link": article.link,
            "published": article.published.isoformat(),
            "updated": article.updated.isoformat(),
            "authors": [[a.name, a.email, a.url] for a in article.authors],
            "categories": [list(path) for path in article.categories],
            "tags": list(article.tags),
            "image": article.image,
            "summary": article.summary,
            "content_html": article.content_html,
        }
        if article.language:
            result["article"]["language"] = article.language
    return result


@pytest.mark.parametrize(
    "post", sorted(p.name for p in POSTS.iterdir() if p.suffix != ".json"), ids=str
)
def test_post_gives_its_golden_article(post: str) -> None:
    article, problems = parse_post_bytes((POSTS / post).read_bytes(), context(post))
    actual = as_json(article, problems)
    golden = POSTS / f"{post}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(actual, ensure_ascii=False, indent=2) + "\n", "utf-8")
    assert actual == json.loads(golden.read_text(encoding="utf-8"))
