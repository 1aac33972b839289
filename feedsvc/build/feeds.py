"""Feed documents spliced from shared pieces: a head, the entries (each rendered once, see
`entries`), a tail; a subscription feed within its byte budget (`feeds.max_bytes`: how
many entries fit), and monthly archives."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from feedsvc.build.archives import archive_name
from feedsvc.build.documents import MEDIA_TYPES, VIEW_NAME, document
from feedsvc.build.entries import Entries
from feedsvc.build.feedsettings import FeedSettings
from feedsvc.build.gzparts import Compressor, Part
from feedsvc.build.jsonfeed import ITEM_SEPARATOR, json_head, json_tail
from feedsvc.build.membership import FeedNode
from feedsvc.build.xmlfeed import XML_TAILS, feed_generator, xml_head
from feedsvc.config import Config
from feedsvc.dates import EPOCH
from feedsvc.model import Article, Document
from feedsvc.urls import join_url


@dataclass(frozen=True, slots=True)
class _Head:
    """What a feed document's head is made of, but its date (its newest entry's)."""

    node: FeedNode
    fmt: str
    path: str
    links: tuple[tuple[str, str], ...]  # RFC 5005 §4: (rel, document path)
    archived: bool = False


class FeedRenderer:
    """Renders feeds as a head, entries and a tail, each entry rendered and compressed once.

    An entry is rendered by feedgen in the context it has in a whole feed (same depth,
    same namespace declarations), so the spliced document is byte for byte what feedgen
    writes for the whole feed (a test compares them).
    """

    def __init__(self, config: Config, entries: Entries, compressor: Compressor) -> None:
        self.config = config
        self._entries = entries
        self._compressor = compressor
        self._fixed = {
            data: compressor.part(data)
            for data in (*XML_TAILS.values(), ITEM_SEPARATOR, json_tail(True), json_tail(False))
        }

    def render(
        self, node: FeedNode, fmt: str, settings: FeedSettings, archive: str | None = None
    ) -> tuple[Document, int]:
        """One node's subscription feed in one format ('rss', 'atom' or 'json'), and how
        many entries it holds: its first `limit` articles, less the oldest of them while
        it is over its byte budget (one always stays). `archive` is its newest archive's
        month, for the prev-archive link (RFC 5005 §4)."""
        entries = node.articles[: settings.limit]
        path = node.path(f"feed.{fmt}")
        links = (("prev-archive", node.path(archive_name(archive, fmt))),) if archive else ()
        head = _Head(node, fmt, path, links)
        pieces = [self._entries.part(a, fmt, settings.full) for a in entries]
        count, head_part = self._fit(head, entries, pieces, settings.max_bytes)
        parts = self._splice(fmt, head_part, pieces[:count])
        updated = max((a.updated for a in entries[:count]), default=EPOCH)
        return document(path, MEDIA_TYPES[fmt], parts, updated, node.path(VIEW_NAME)), count

    def _fit(
        self, head: _Head, entries: Sequence[Article], pieces: Sequence[Part], budget: int
    ) -> tuple[int, Part]:
        """How many entries the feed keeps within `budget` identity bytes (at least one),
        and the head of that many: it names the newest update of what is left.

        Computed from the sizes of the pieces already rendered; only the head is made
        again, since leaving entries out may change its date (and so, in principle, its
        length): one extra turn at most in practice.
        """
        part = self._head_part(head, entries)
        separator = self._fixed[ITEM_SEPARATOR].size if head.fmt == "json" else 0
        tail = self._tail(head.fmt, not entries).size
        sizes = [piece.size for piece in pieces]
        count = len(sizes)
        while count > 1 and document_size(part.size, sizes[:count], separator, tail) > budget:
            count = min(count - 1, fit_count(part.size, sizes[:count], separator, tail, budget))
            part = self._head_part(head, entries[:count])
        return count, part

    def render_archive(
        self,
        node: FeedNode,
        fmt: str,
        settings: FeedSettings,
        *,
        month: str,
        articles: Sequence[Article],
        around: tuple[str | None, str | None],
    ) -> Document:
        """One month's archive of a node (RFC 5005 §4): every article of the month, a
        `current` link to the subscription feed, `prev-archive` to the month before and
        `next-archive` to the month after, when there are such months (`around`)."""
        path = node.path(archive_name(month, fmt))
        links = [("current", node.path(f"feed.{fmt}"))]
        for rel, other in zip(("prev-archive", "next-archive"), around, strict=True):
            if other:
                links.append((rel, node.path(archive_name(other, fmt))))
        head = self._head_part(_Head(node, fmt, path, tuple(links), archived=True), articles)
        pieces = [self._entries.part(a, fmt, settings.full) for a in articles]
        updated = max((a.updated for a in articles), default=EPOCH)
        return document(path, MEDIA_TYPES[fmt], self._splice(fmt, head, pieces), updated)

    def _head_part(self, head: _Head, entries: Sequence[Article]) -> Part:
        config = self.config
        links = tuple((rel, join_url(config.site.base_url, target)) for rel, target in head.links)
        if head.fmt == "json":
            # JSON Feed 1.1 has no archives: next_url pages along the same chain.
            body = json_head(head.node, head.path, config, dict(links).get("prev-archive"))
        else:
            updated = max((a.updated for a in entries), default=EPOCH)
            generator = feed_generator(
                head.node, head.fmt, head.path, updated, config, links=links, archived=head.archived
            )
            body = xml_head(generator, head.fmt)
        return self._compressor.part(body)

    def _tail(self, fmt: str, empty: bool) -> Part:
        return self._fixed[json_tail(empty) if fmt == "json" else XML_TAILS[fmt]]

    def _splice(self, fmt: str, head: Part, pieces: Sequence[Part]) -> list[Part]:
        """A whole document: its head, its entries (JSON items comma-separated), its tail."""
        if fmt == "json" and pieces:
            separator = self._fixed[ITEM_SEPARATOR]
            pieces = [pieces[0], *(part for piece in pieces[1:] for part in (separator, piece))]
        return [head, *pieces, self._tail(fmt, not pieces)]


def document_size(head: int, sizes: Sequence[int], separator: int, tail: int) -> int:
    """Bytes of a document of a head, entries joined by `separator` bytes, and a tail."""
    return head + sum(sizes) + separator * max(len(sizes) - 1, 0) + tail


def fit_count(head: int, sizes: Sequence[int], separator: int, tail: int, budget: int) -> int:
    """The most leading entries (newest first) that fit in `budget` bytes with this head
    and tail, but at least one: the feed keeps its newest entry even when that alone is
    over. From the entries' sizes alone, by binary search over their running sums."""
    # totals[k - 1]: bytes of the first k entries, each with a separator after it.
    totals = list(accumulate(size + separator for size in sizes))
    room = budget - head - tail + separator  # the last entry has no separator after it
    return max(1, bisect_right(totals, room))
