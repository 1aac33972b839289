"""WebSub (W3C Recommendation, §7): tell the hub which feeds changed, off the request path."""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from feedsvc.transport import Outcome, make_session, post_form

if TYPE_CHECKING:
    from feedsvc.transport import Session

logger = logging.getLogger(__name__)


class Publisher:
    """Pings a hub with `hub.mode=publish` for each changed topic, from one background thread.

    Reloads hand over topic URLs and return at once; a slow or failing hub only delays
    the pings behind it. Results are counted by outcome (`ok`, `failed`).
    """

    def __init__(
        self,
        hub: str,
        site_url: str,
        post: Callable[[Session, str, dict[str, str]], Outcome] = post_form,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self.hub = hub
        self.on_result = on_result
        self.results: Counter[str] = Counter()
        self._post = post
        self._session = make_session(site_url)
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._run, name="websub", daemon=True).start()

    def publish(self, topics: Iterable[str]) -> None:
        """Queue one ping per topic URL; never blocks."""
        for topic in topics:
            self._queue.put(topic)

    def wait(self) -> None:
        """Block until every queued ping has been sent (what tests wait for)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            topic = self._queue.get()
            try:
                # PubSubHubbub 0.4 names the topic hub.url; hubs of the W3C draft read
                # hub.topic. Sending both is what widely used publishers do.
                form = {"hub.mode": "publish", "hub.url": topic, "hub.topic": topic}
                outcome = self._post(self._session, self.hub, form)
                result = "ok" if outcome.ok else "failed"
                self.results[result] += 1
                if self.on_result is not None:
                    self.on_result(result)
                if outcome.ok:
                    logger.info("websub: pinged %s for %s", self.hub, topic)
                else:
                    logger.warning(
                        "websub: ping for %s failed after %d attempts: %s",
                        topic,
                        outcome.attempts,
                        outcome.detail,
                    )
            finally:
                self._queue.task_done()


class Relay:
    """Hands changed topics to the Publisher of the hub that the current config names.

    Only the builder process reloads, so a hub hears of each change once however many
    workers serve it.
    """

    def __init__(
        self,
        hub: Callable[[], str | None],
        site_url: Callable[[], str],
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self._on_result = on_result
        self._hub = hub
        self._site_url = site_url
        self.publishers: dict[str, Publisher] = {}

    def __call__(self, topics: list[str]) -> None:
        """Queue pings for `topics` when a hub is configured."""
        hub = self._hub()
        if not hub or not topics:
            return
        publisher = self.publishers.get(hub)
        if publisher is None:
            publisher = Publisher(hub, self._site_url(), on_result=self._on_result)
            self.publishers[hub] = publisher
        publisher.publish(topics)
