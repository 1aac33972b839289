"""Articles made in code, for the tests that build feeds from them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from feedsvc.model import Article, Author, deflate_html

T0 = datetime(2022, 1, 1, 8, 0, tzinfo=UTC)
MARCH = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def article(n: int, categories: tuple[tuple[str, ...], ...] = (), **changes: object) -> Article:
    """Post n, an hour after post n - 1, by Desk; `changes` replace its fields."""
    base = Article(
        id=f"urn:uuid:00000000-0000-5000-8000-{n:012d}",
        source="articles",
        path=f"post-{n}.md",
        title=f"Post {n} & <friends>",
        link=f"http://127.0.0.1:8080/2022/01/01/post-{n}/",
        published=T0 + timedelta(hours=n),
        updated=T0 + timedelta(hours=n),
        content=deflate_html(
            f"<p>Body of post {n} with <a href='http://x.example/'>a link</a>.</p>"
        ),
        authors=(Author("Desk"),),
        categories=categories,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def make_article() -> Article:
    """One article with every field set."""
    return Article(
        id="urn:post:1",
        source="posts",
        path="2024/钱塘.md",
        title="钱塘证券 & <friends>",
        link="https://news.example.cn/2024/03/01/qiantang/",
        published=MARCH,
        updated=MARCH + timedelta(hours=1),
        content=deflate_html("<p>正文</p>"),
        authors=(Author("财联社", email="desk@example.cn"),),
        categories=(("金融", "财联社"),),
        tags=("A股",),
        summary="导语",
        image="https://img.example.cn/a.png",
    )


def post(n: int, published: datetime, body: str, author: str = "Desk") -> Article:
    """Post n of the source `posts`, in 金融, published and updated at `published`."""
    return Article(
        id=f"urn:post:{n}",
        source="posts",
        path=f"{n}.md",
        title=f"Post {n}",
        link=f"https://news.example.cn/{n}/",
        published=published,
        updated=published,
        content=deflate_html(body),
        authors=(Author(author),),
        categories=(("金融",),),
    )
