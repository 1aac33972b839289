"""Article.revision: a digest of every field, the same for equal articles in any process."""

import copy
import dataclasses
import pickle
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import pytest

from feedsvc.model import Article, Author, Identity, Origin, assemble, deflate_html

from tests.support.articles import make_article
from tests.support.commands import in_another_process

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


CHANGES: dict[str, object] = {
    "id": "urn:post:2",
    "source": "other",
    "path": "2024/other.md",
    "title": "钱塘证券",
    "link": "https://news.example.cn/other/",
    "published": T0 - timedelta(seconds=1),
    "updated": T0 + timedelta(hours=2),
    "content": deflate_html("<p>正文.</p>"),
    "authors": (Author("财联社"),),
    "categories": (("金融",), ("财联社",)),
    "tags": ("A股", "AI"),
    "summary": "导语.",
    "image": None,
    "identity": Identity(content="a digest of the post as written"),
    "origin": Origin("https://wire.example/feed", "Wire", "https://wire.example/feed"),
    "language": "zh-CN",
}


def test_every_field_is_covered() -> None:
    assert set(CHANGES) == {f.name for f in fields(Article) if f.init}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_change_to_any_field_changes_the_revision(name: str) -> None:
    article = make_article()
    changed = replace(article, **{name: CHANGES[name]})  # type: ignore[arg-type]
    assert changed.revision != article.revision


def test_equal_articles_made_anew_have_the_same_revision() -> None:
    article = make_article()
    copies = [
        make_article(),
        replace(article),
        copy.deepcopy(article),
        pickle.loads(pickle.dumps(article)),
    ]
    assert all(c == article and c.revision == article.revision for c in copies)
    assert len(article.revision) == 32


def test_the_revision_is_the_same_in_another_process() -> None:
    script = "from tests.support.articles import make_article;print(make_article().revision)"
    assert in_another_process(script).decode().strip() == make_article().revision


def test_assemble_makes_the_object_of_its_field_values_with_the_revision_given() -> None:
    article = replace(make_article(), **CHANGES)  # type: ignore[arg-type]
    values = [getattr(article, f.name) for f in fields(Article)]
    assert values[-1] == article.revision  # the revision is a field too, the last
    made = assemble(Article, values)
    assert made == article and made is not article and made.revision == article.revision
    assert assemble(Article, [*values[:-1], "given"]).revision == "given"  # not computed
    identity = Identity(content="c", fields="f", slug="s")
    assert assemble(Identity, [getattr(identity, f.name) for f in fields(Identity)]) == identity
    with pytest.raises(ValueError, match="unpack"):
        assemble(Article, values[:-1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.title = "still frozen"  # type: ignore[misc]
