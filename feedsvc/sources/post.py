"""One front-matter post (YAML header + body) -> Article, through a table of field readers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urljoin

import frontmatter.default_handlers
import yaml

from feedsvc.config import SiteConfig
from feedsvc.content import (
    excerpt_html,
    html_to_text,
    plain_text,
    plain_text_html,
    render_body,
    sanitize_html,
    truncate,
)
from feedsvc.dates import to_utc
from feedsvc.errors import ArticleError, FeedsvcError, MarkdownError
from feedsvc.model import Article, Author, Identity, Problem, deflate_html
from feedsvc.urls import entry_id, expand_permalink, explicit_id, is_absolute, slugize, to_uri

_EMAIL = re.compile(r"[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+")
SUMMARY_LIMIT = 300  # characters of plain text in an entry summary

# A YAML document may not expand (through aliases) to more nodes than this:
# a "billion laughs" header is refused before anything walks it.
MAX_EXPANDED_NODES = 100_000


@dataclass(frozen=True, slots=True)
class PostContext:
    """What a post needs from outside itself: where it lives and the site's settings."""

    source: str
    relpath: str
    display_path: str
    site: SiteConfig
    tz: tzinfo
    fallback_date: datetime


class _Handler(frontmatter.default_handlers.YAMLHandler):
    """python-frontmatter's YAML handler with a bounded, tag-free C loader."""

    def load(self, fm: str, **kwargs: object) -> Any:
        loader = yaml.CSafeLoader(fm)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            # Without an alias (`*name`) the nodes are what the text spells out, at most
            # two per character, so only text with aliases or of that size is counted.
            could_expand = "*" in fm or 2 * len(fm) > MAX_EXPANDED_NODES
            if could_expand and _expanded_size(node) > MAX_EXPANDED_NODES:
                raise _TooLargeError
            try:
                return loader.construct_document(node), node
            except (ValueError, TypeError, OverflowError) as exc:
                # PyYAML raises a bare ValueError for a timestamp like 2021-13-45.
                raise _BadValueError(_failing_node(node, exc), str(exc)) from None
        finally:
            loader.dispose()


class _TooLargeError(FeedsvcError):
    """The header would expand beyond MAX_EXPANDED_NODES."""


class _BadValueError(FeedsvcError):
    """A value PyYAML cannot construct (a timestamp like 2021-13-45), at `node`."""

    def __init__(self, node: yaml.Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


def _failing_node(root: yaml.Node, exc: Exception) -> yaml.Node:
    """The top-level value whose construction raises `exc`'s kind, to point at its line."""
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            probe = yaml.constructor.SafeConstructor()
            try:
                probe.construct_object(value, deep=True)
            except type(exc):
                found: yaml.Node = key
                return found
    return root


_HANDLER = _Handler()


def _expanded_size(root: yaml.Node) -> int:
    """Count nodes as if every alias were copied out, without copying (iterative, memoised)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_EXPANDED_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def read_post(text: str, ctx: PostContext) -> tuple[Article | None, tuple[Problem, ...]]:
    """Parse a post into (article or None for drafts, warnings); ArticleError when unpublishable."""
    leading = len(text) - len(text.lstrip())
    offset = text.count("\n", 0, leading)
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ArticleError(ctx.display_path, 1, "empty file")
    if not _HANDLER.detect(text):
        raise ArticleError(ctx.display_path, offset + 1, "no YAML front matter (--- block)")
    try:
        header, body = _HANDLER.split(text)
    except ValueError:
        raise ArticleError(
            ctx.display_path, offset + 1, "front matter is not closed by ---"
        ) from None
    meta, node = _load_header(header, ctx, offset)
    lines = {k.value: offset + k.start_mark.line + 1 for k, _ in node.value}
    values = _read_fields(meta, lines, ctx, offset)
    if values["draft"] or values["hidden"] or values["published_flag"] is False:
        return None, ()
    warnings: tuple[Problem, ...] = ()
    if values["published"] is None:
        line = offset + 1
        warnings = (Problem(ctx.display_path, line, "no date: using the file's mtime", "warning"),)
    if "title" in meta and values["title"] is None:  # `title:` or `title: ""`
        line = lines.get("title", offset + 1)
        reason = "title: empty, the file name is used"
        warnings = (*warnings, Problem(ctx.display_path, line, reason, "warning"))
    values["language"], bad = _language(values["language"])
    if bad:  # a bad tag is left out, not the post
        line = lines.get("lang", offset + 1)
        warnings = (*warnings, Problem(ctx.display_path, line, f"lang: {bad}", "warning"))
    try:
        html = render_body(body, PurePosixPath(ctx.relpath).suffix)
    except MarkdownError as exc:
        body_line = offset + header.count("\n") + 2  # the line after the closing ---
        reason = f"{exc}; published as plain text"
        warnings = (*warnings, Problem(ctx.display_path, body_line, reason, "warning"))
        html = plain_text_html(body)
    return _assemble(values, html, ctx, body), warnings


def _load_header(header: str, ctx: PostContext, offset: int) -> tuple[dict[str, Any], yaml.Node]:
    try:
        meta, node = _HANDLER.load(header)
    except _TooLargeError:
        raise ArticleError(
            ctx.display_path, offset + 1, "front matter expands (YAML aliases) beyond the limit"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = offset + mark.line + 1 if mark else offset + 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleError(ctx.display_path, line, f"invalid YAML front matter: {reason}") from None
    except _BadValueError as exc:
        line = offset + exc.node.start_mark.line + 1
        name = f"{exc.node.value}: " if isinstance(exc.node, yaml.ScalarNode) else ""
        raise ArticleError(ctx.display_path, line, f"{name}{exc.reason}") from None
    except RecursionError:
        raise ArticleError(ctx.display_path, offset + 1, "front matter nests too deeply") from None
    if not isinstance(meta, dict) or not isinstance(node, yaml.MappingNode):
        raise ArticleError(ctx.display_path, offset + 1, "front matter is not a mapping of keys")
    return meta, node


# ---- the field table: output name, front-matter keys (first present wins), reader ----

Reader = Callable[[Any, PostContext], Any]


def _text(value: Any, ctx: PostContext) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return plain_text(str(value)) or None
    raise ValueError(f"expected text, got {type(value).__name__}")


def _date(value: Any, ctx: PostContext) -> datetime | None:
    return None if value is None else to_utc(value, ctx.tz)


def _flag(value: Any, ctx: PostContext) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def _names(value: Any, ctx: PostContext) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str | int | float) else value
    if not isinstance(items, list):
        raise ValueError(f"expected a name or a list of names, got {type(value).__name__}")
    names: list[str] = []
    for item in items:
        name = _text(item, ctx)
        if name and name not in names:
            names.append(name)
    return tuple(names)


def _categories(value: Any, ctx: PostContext) -> tuple[tuple[str, ...], ...]:
    """Hexo semantics: a list is one hierarchy; a list of lists is several."""
    if value is not None and not isinstance(value, str | list):
        raise ValueError(f"expected a name or a list of names, got {value!r}")
    if isinstance(value, list) and any(isinstance(v, list) for v in value):
        paths = [_names(v, ctx) for v in value]
    else:
        paths = [_names(value, ctx)]
    unique: list[tuple[str, ...]] = []
    for path in paths:
        if path and path not in unique:
            unique.append(path)
    return tuple(unique)


def _authors(value: Any, ctx: PostContext) -> tuple[Author, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    authors = [_author(item, ctx) for item in items]
    return tuple(a for a in authors if a is not None)


def _author(value: Any, ctx: PostContext) -> Author | None:
    if isinstance(value, dict):
        name = _text(value.get("name"), ctx)
        email = _text(value.get("email"), ctx)
        url = _text(value.get("url"), ctx)
        # Feeds require a valid address and URI; a malformed one is dropped, not published.
        email = email if email and _EMAIL.fullmatch(email) else None
        url = to_uri(url) if url and is_absolute(url) else None
        return Author(name, email, url) if name else None
    name = _text(value, ctx)
    return Author(name) if name else None


def _url(value: Any, ctx: PostContext) -> str | None:
    url = _text(value, ctx)
    if url is not None and not is_absolute(url):
        raise ValueError(f"expected an absolute URL, got {url!r}")
    return url


def _as_is(value: Any, ctx: PostContext) -> Any:
    return value


# RFC 5646 (BCP 47) syntax, loosely: subtags of 1 to 8 letters or digits, the first letters.
# Whether the language exists is not checked: en-GB, zh-Hans-CN, x-klingon all pass.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def _language(value: Any) -> tuple[str | None, str | None]:
    """(the tag, None) for a well-formed `lang` (`en_GB` is read as en-GB), (None, None)
    for none, (None, reason) for a malformed one, which the post is published without."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        kind = type(value).__name__
        return None, f"expected a language tag like en-GB, got {kind}; published without one"
    tag = value.strip().replace("_", "-")
    if not _LANGUAGE_TAG.fullmatch(tag):
        return None, f"not a BCP 47 language tag like en-GB: {value!r}; published without one"
    return _shared(tag), None


def _image(value: Any, ctx: PostContext) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("url") or value.get("src")
    url = _text(value, ctx)
    return to_uri(urljoin(ctx.site.home.rstrip("/") + "/", url)) if url else None


FIELDS: tuple[tuple[str, tuple[str, ...], Reader], ...] = (
    ("title", ("title",), _text),
    ("published", ("date",), _date),
    ("updated", ("updated", "last_modified_at", "lastmod"), _date),
    ("authors", ("author", "authors"), _authors),
    ("categories", ("categories", "category"), _categories),
    ("tags", ("tags", "keywords"), _names),
    ("id", ("id", "guid"), _text),
    ("slug", ("slug",), _text),
    ("permalink", ("permalink",), _text),
    ("link", ("link",), _url),
    ("summary", ("description", "excerpt", "summary"), _text),
    ("image", ("headimg", "thumbnail", "cover", "image", "images"), _image),
    ("language", ("lang",), _as_is),  # checked by read_post: a bad tag is only a warning
    ("draft", ("draft",), _flag),
    ("hidden", ("hidden",), _flag),
    ("published_flag", ("published",), _flag),
)


def _read_fields(
    meta: dict[str, Any], lines: dict[str, int], ctx: PostContext, offset: int
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, keys, reader in FIELDS:
        key = next((k for k in keys if k in meta), None)
        try:
            values[name] = reader(meta[key] if key else None, ctx)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ArticleError(
                ctx.display_path, lines.get(str(key), offset + 1), f"{key}: {exc}"
            ) from None
    return values


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
    pattern: str | None = None
    category = slugize(categories[0][-1]) if categories else "uncategorized"
    if values["link"] or (values["permalink"] and is_absolute(values["permalink"])):
        link = to_uri(values["link"] or values["permalink"])
    else:
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
        authors=_shared(values["authors"] or (Author(ctx.site.default_author),)),
        categories=_shared(categories),
        tags=_shared(values["tags"]),
        summary=truncate(summary, SUMMARY_LIMIT),
        image=values["image"],
        identity=_identity(values, body, pattern, slug, category),
        language=values["language"],
    )


def _identity(
    values: dict[str, Any], body: str, pattern: str | None, slug: str, category: str
) -> Identity:
    """What the id ledger recognises this post by after a rename (README: "Ids")."""
    date = values["published"].isoformat() if values["published"] else None
    fields = repr((values["title"], date))
    content = hashlib.sha256(fields.encode("utf-8"))
    content.update(body.strip().encode("utf-8"))
    return Identity(
        content=content.hexdigest()[:16],
        fields=_digest(fields) if values["title"] and date else None,
        explicit=bool(values["id"]),
        dated=date is not None,
        pattern=_shared(pattern),
        slug=slug if values["slug"] or values["permalink"] else None,
        category=_shared(category),
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


_SHARED: dict[Any, Any] = {}
_T = TypeVar("_T")
_SHARED_LIMIT = 100_000


def _shared(value: _T) -> _T:
    """One object for equal authors, category paths and tag lists: most articles repeat
    a few of them, and at 50,000 posts the copies are tens of MB. Bounded: emptied
    when it grows past _SHARED_LIMIT distinct values."""
    if len(_SHARED) > _SHARED_LIMIT:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)  # type: ignore[no-any-return]


def with_shared_values(article: Article) -> Article:
    """`article` holding the very authors, categories and tags objects equal ones of
    other articles hold: what a parse in this process gives, for a parse in another or
    one read back from the parse cache.

    Changed in place, on an article the caller has just received and no one else holds:
    the values are equal, so neither its equality nor its revision changes, and copying
    it (which computes the revision again) cost a third of a restart's resume.
    """
    for name in ("authors", "categories", "tags"):
        value = getattr(article, name)
        shared = _shared(value)
        if shared is not value:
            object.__setattr__(article, name, shared)
    return article
