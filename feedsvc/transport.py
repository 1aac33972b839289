"""Outgoing HTTP: the only user of requests. Every call has timeouts and bounded retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests

from feedsvc import __version__

logger = logging.getLogger(__name__)

TIMEOUT = (5.0, 20.0)  # (connect, read) seconds
Session = requests.Session


def user_agent(site_url: str) -> str:
    """How feedsvc names itself to other servers: product, version and the site it serves."""
    return f"feedsvc/{__version__} (+{site_url})"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request ended: `ok`, or the last status or error after every attempt."""

    ok: bool
    attempts: int
    detail: str


def post_form(
    session: requests.Session,
    url: str,
    form: Mapping[str, str],
    *,
    attempts: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """POST a form; retry on connection errors and 5xx/429 with exponential backoff."""
    detail = ""
    for attempt in range(1, attempts + 1):
        try:
            response = session.post(url, data=dict(form), timeout=TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            detail = type(exc).__name__
        else:
            response.close()
            if response.status_code < 400:
                return Outcome(True, attempt, str(response.status_code))
            detail = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                return Outcome(False, attempt, detail)  # the hub refused: retrying won't help
        if attempt < attempts:
            sleep(backoff * 2 ** (attempt - 1))
    return Outcome(False, attempts, detail)


def make_session(site_url: str) -> requests.Session:
    """A session that names feedsvc in its User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = user_agent(site_url)
    return session
