"""A post's YAML header (front matter): split from the body and loaded by a bounded,
tag-free loader; every failure is an ArticleError at its line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import frontmatter.default_handlers
import yaml

from feedsvc.errors import ArticleError

# A YAML document may not expand (through aliases) to more nodes than this:
# a "billion laughs" header is refused before anything walks it.
MAX_EXPANDED_NODES = 100_000
_NOT_A_MAPPING = "front matter is not a mapping of keys"


@dataclass(frozen=True, slots=True)
class FrontMatter:
    """A post split in two: its header's values with the line of each key, and its body."""

    meta: dict[str, Any]
    lines: dict[str, int]  # key -> its 1-based line in the file
    body: str
    first_line: int  # the opening ---: where a problem of no one key is reported
    body_line: int  # the line after the closing ---


def split_post(text: str, display: str) -> FrontMatter:
    """A post's text -> its front matter and body; ArticleError when it has none or a bad one."""
    leading = len(text) - len(text.lstrip())
    first = text.count("\n", 0, leading) + 1
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ArticleError(display, 1, "empty file")
    if not _HANDLER.detect(text):
        raise ArticleError(display, first, "no YAML front matter (--- block)")
    try:
        header, body = _HANDLER.split(text)
    except ValueError:
        raise ArticleError(display, first, "front matter is not closed by ---") from None
    meta, node = _load(header, display, first)
    lines = {key.value: first + key.start_mark.line for key, _ in node.value}
    return FrontMatter(meta, lines, body, first, first + header.count("\n") + 1)


def _load(header: str, display: str, first: int) -> tuple[dict[str, Any], yaml.MappingNode]:
    """Load a header with a bounded, tag-free C loader."""
    loader = yaml.CSafeLoader(header)
    try:
        node = loader.get_single_node()
        if node is None:  # an empty header
            raise ArticleError(display, first, _NOT_A_MAPPING)
        # Without an alias (`*name`) the nodes are what the text spells out, at most
        # two per character, so only text with aliases or of that size is counted.
        could_expand = "*" in header or 2 * len(header) > MAX_EXPANDED_NODES
        if could_expand and _expanded_size(node) > MAX_EXPANDED_NODES:
            reason = "front matter expands (YAML aliases) beyond the limit"
            raise ArticleError(display, first, reason)
        try:
            meta = loader.construct_document(node)
        except (ValueError, TypeError, OverflowError) as exc:
            # PyYAML raises a bare ValueError for a timestamp like 2021-13-45.
            raise _bad_value(node, exc, display, first) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first + mark.line if mark else first
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleError(display, line, f"invalid YAML front matter: {reason}") from None
    except RecursionError:
        raise ArticleError(display, first, "front matter nests too deeply") from None
    finally:
        loader.dispose()
    if not isinstance(meta, dict) or not isinstance(node, yaml.MappingNode):
        raise ArticleError(display, first, _NOT_A_MAPPING)
    return meta, node


def _bad_value(root: yaml.Node, exc: Exception, display: str, first: int) -> ArticleError:
    """`exc` at the key of the top-level value whose construction raises its kind."""
    node = root
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            try:
                yaml.constructor.SafeConstructor().construct_object(value, deep=True)
            except type(exc):
                node = key
                break
    name = f"{node.value}: " if isinstance(node, yaml.ScalarNode) else ""
    return ArticleError(display, first + node.start_mark.line, f"{name}{exc}")


# python-frontmatter finds and splits off the header; _load loads it.
_HANDLER = frontmatter.default_handlers.YAMLHandler()


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
