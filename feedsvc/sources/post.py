"""One front-matter post -> Article: decode the file, split off the header, read the
field table (feedsvc.sources.fields), render and sanitize the body."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from feedsvc.content import (
    excerpt_html,
    html_to_text,
    plain_text_html,
    render_body,
    sanitize_html,
    truncate,
)
from feedsvc.errors import ArticleError, MarkdownError
from feedsvc.model import Article, Author, Identity, Problem, deflate_html
from feedsvc.sources.fields import PostContext, read_fields, read_language
from feedsvc.sources.header import FrontMatter, split_post
from feedsvc.sources.shared import share
from feedsvc.urls import entry_id, expand_permalink, explicit_id, is_absolute, slugize, to_uri

SUMMARY_LIMIT = 300  # characters of plain text in an entry summary


def parse_post_bytes(data: bytes, ctx: PostContext) -> tuple[Article | None, tuple[Problem, ...]]:
    """A file's bytes -> (article, or None for drafts and failures; its problems). Never raises."""
    try:
        text, encoding_warnings = decode_text(data, ctx.display_path)
        article, warnings = read_post(text, ctx)
    except ArticleError as exc:
        return None, (exc.problem,)
    return article, encoding_warnings + warnings


def decode_text(data: bytes, display: str) -> tuple[str, tuple[Problem, ...]]:
    """Decode UTF-8 (BOM tolerated), else GB18030 with a warning; ArticleError otherwise."""
    if b"\x00" in data:
        raise ArticleError(display, 1, "binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig"), ()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
    # Files from Chinese Windows tools are often GBK; GB18030 is its superset.
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise ArticleError(display, line, "neither UTF-8 nor GB18030 text") from None
    return text, (Problem(display, line, "not UTF-8; read as GB18030", "warning"),)


def read_post(text: str, ctx: PostContext) -> tuple[Article | None, tuple[Problem, ...]]:
    """Parse a post into (article or None for drafts, warnings); ArticleError when unpublishable."""
    front = split_post(text, ctx.display_path)
    values = read_fields(front, ctx)
    if values["draft"] or values["hidden"] or values["published_flag"] is False:
        return None, ()
    values["language"], bad_language = read_language(values["language"])
    warnings = _warnings(front, values, bad_language, ctx.display_path)
    try:
        html = render_body(front.body, PurePosixPath(ctx.relpath).suffix)
    except MarkdownError as exc:
        reason = f"{exc}; published as plain text"
        warnings = (*warnings, Problem(ctx.display_path, front.body_line, reason, "warning"))
        html = plain_text_html(front.body)
    return _assemble(values, html, ctx, front.body), warnings


def _warnings(
    front: FrontMatter, values: dict[str, Any], bad_language: str | None, display: str
) -> tuple[Problem, ...]:
    """What is published anyway: no date (the mtime), an empty title, a bad lang (left out)."""
    first, lines = front.first_line, front.lines
    warnings: list[Problem] = []
    if values["published"] is None:
        warnings.append(Problem(display, first, "no date: using the file's mtime", "warning"))
    if "title" in front.meta and values["title"] is None:  # `title:` or `title: ""`
        reason = "title: empty, the file name is used"
        warnings.append(Problem(display, lines.get("title", first), reason, "warning"))
    if bad_language:
        line = lines.get("lang", first)
        warnings.append(Problem(display, line, f"lang: {bad_language}", "warning"))
    return tuple(warnings)


def _assemble(values: dict[str, Any], html: str, ctx: PostContext, body: str) -> Article:
    stem = PurePosixPath(ctx.relpath).stem
    published = values["published"] or ctx.fallback_date
    updated = max(values["updated"] or published, published)
    categories = values["categories"]
    ident = (
        explicit_id(ctx.site.base_url, values["id"])
        if values["id"]
        else entry_id(ctx.site.base_url, ctx.source, ctx.relpath)
    )
    slug = slugize(values["slug"] or stem)
    category = slugize(categories[0][-1]) if categories else "uncategorized"
    link, pattern = _link(
        values, ctx, published=published, slug=slug, category=category, ident=ident
    )
    content = sanitize_html(html, link)
    summary = values["summary"] or html_to_text(excerpt_html(content))
    return Article(
        id=ident,
        source=ctx.source,
        path=ctx.relpath,
        title=values["title"] or stem,
        link=link,
        published=published,
        updated=published if updated == published else updated,
        content=deflate_html(content),
        authors=share(values["authors"] or (Author(ctx.site.default_author),)),
        categories=share(categories),
        tags=share(values["tags"]),
        summary=truncate(summary, SUMMARY_LIMIT),
        image=values["image"],
        identity=_identity(values, body, pattern, slug, category),
        language=values["language"],
    )


def _link(
    values: dict[str, Any],
    ctx: PostContext,
    *,
    published: datetime,
    slug: str,
    category: str,
    ident: str,
) -> tuple[str, str | None]:
    """The article's link, and the permalink pattern that made it (None: given whole)."""
    if values["link"] or (values["permalink"] and is_absolute(values["permalink"])):
        return to_uri(values["link"] or values["permalink"]), None
    pattern = values["permalink"] or ctx.site.permalink
    link = expand_permalink(
        pattern,
        ctx.site.home,
        published=published,
        tz=ctx.tz,
        slug=slug,
        category=category,
        ident=ident,
    )
    return link, pattern


def _identity(
    values: dict[str, Any], body: str, pattern: str | None, slug: str, category: str
) -> Identity:
    """What the id ledger recognises this post by after a rename (README: "Ids")."""
    date = values["published"].isoformat() if values["published"] else None
    digest = hashlib.sha256(repr((values["title"], date)).encode("utf-8"))
    fields = digest.hexdigest()[:16]
    digest.update(body.strip().encode("utf-8"))  # content: the fields, then the body
    return Identity(
        content=digest.hexdigest()[:16],
        fields=fields if values["title"] and date else None,
        explicit=bool(values["id"]),
        dated=date is not None,
        pattern=share(pattern),
        slug=slug if values["slug"] or values["permalink"] else None,
        category=share(category),
    )
