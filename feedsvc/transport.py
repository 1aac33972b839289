"""Outgoing HTTP: the only user of requests. Every call has timeouts and bounded retries.

requests is imported with the first session (`make_session`): a server without remote
sources or a hub never needs it, and no start waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from feedsvc import __version__
from feedsvc.dates import parse_http_date
from feedsvc.errors import FetchError

if TYPE_CHECKING:
    from requests import Response
    from requests import Session as Session  # noqa: PLC0414 (re-exported: websub's annotations)

TIMEOUT = (5.0, 20.0)  # (connect, read) seconds
POST_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request ended: `ok`, or the last status or error after every attempt."""

    ok: bool
    attempts: int
    detail: str


def post_form(
    session: Session, url: str, form: Mapping[str, str], *, backoff: float = 1.0
) -> Outcome:
    """POST a form; retry on connection errors and 5xx/429 with exponential backoff."""
    import requests  # noqa: PLC0415 (imported by make_session: see the module docstring)

    detail = ""
    for attempt in range(1, POST_ATTEMPTS + 1):
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
        if attempt < POST_ATTEMPTS:
            time.sleep(backoff * 2 ** (attempt - 1))
    return Outcome(False, POST_ATTEMPTS, detail)


def make_session(site_url: str) -> Session:
    """A session whose User-Agent names feedsvc: product, version and the site it serves."""
    import requests  # noqa: PLC0415 (see the module docstring)

    session = requests.Session()
    session.headers["User-Agent"] = f"feedsvc/{__version__} (+{site_url})"
    return session


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched feed: 200 with its body and validators, or 304 (nothing new)."""

    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    moved_to: str | None  # the target of a permanent redirect, for the operator


MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def fetch(
    session: Session,
    url: str,
    *,
    headers: Mapping[str, str],
    etag: str | None,
    last_modified: str | None,
    read_timeout: float,
    max_bytes: int,
) -> Fetched:
    """GET a feed conditionally, following up to 5 redirects, reading at most `max_bytes`."""
    request_headers = dict(headers)
    # RFC 9110 §13.1: send back the validators of the copy we hold.
    if etag:
        request_headers["If-None-Match"] = etag
    if last_modified:
        request_headers["If-Modified-Since"] = last_modified
    seen, moved_to, permanent = {url}, None, True
    for _ in range(MAX_REDIRECTS + 1):
        response = _get(session, url, request_headers, read_timeout)
        with response:
            if response.status_code not in _REDIRECTS:
                return _result(response, max_bytes, moved_to)
            target = urljoin(url, response.headers.get("Location", ""))
        if target in seen:
            raise FetchError("redirects", f"redirect loop at {target}")
        # While every hop so far is permanent (301, 308), the feed has moved to `target`.
        permanent = permanent and response.status_code in (301, 308)
        if permanent:
            moved_to = target
        seen.add(target)
        url = target
    raise FetchError("redirects", f"more than {MAX_REDIRECTS} redirects")


def _get(session: Session, url: str, headers: Mapping[str, str], read_timeout: float) -> Response:
    import requests  # noqa: PLC0415 (imported by make_session: see the module docstring)

    try:
        return session.get(
            url,
            headers=headers,
            timeout=(TIMEOUT[0], read_timeout),
            stream=True,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise FetchError("timeout", "timed out") from None
    except requests.ConnectionError as exc:
        text = str(exc)
        if "NameResolution" in text or "Name or service not known" in text:
            raise FetchError("dns", "DNS lookup failed") from None
        raise FetchError("connection", "connection failed (refused or reset)") from None
    except requests.RequestException as exc:
        raise FetchError("request", f"request failed: {type(exc).__name__}") from None


def _result(response: Response, max_bytes: int, moved_to: str | None) -> Fetched:
    import requests  # noqa: PLC0415 (imported by make_session: see the module docstring)

    status = response.status_code
    if status == 304:
        return Fetched(304, b"", "", None, None, moved_to)
    if status in (429, 503):
        raise FetchError(
            "rate_limited", f"HTTP {status}", _retry_after(response.headers.get("Retry-After"))
        )
    if status >= 400:
        raise FetchError("http_5xx" if status >= 500 else "http_4xx", f"HTTP {status}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"body of {declared} bytes is over max_bytes {max_bytes}")
    body = bytearray()
    try:
        for chunk in response.iter_content(64 * 1024):
            body += chunk
            if len(body) > max_bytes:
                raise FetchError(
                    "too_large", f"body is over max_bytes {max_bytes}; stopped reading"
                )
    except requests.RequestException as exc:
        raise FetchError("request", f"body read failed: {type(exc).__name__}") from None
    return Fetched(
        200,
        bytes(body),
        response.headers.get("Content-Type", ""),
        response.headers.get("ETag"),
        response.headers.get("Last-Modified"),
        moved_to,
    )


def _retry_after(value: str | None) -> float | None:
    """RFC 9110 §10.2.3: seconds, or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    when = parse_http_date(value)
    return None if when is None else max(0.0, when.timestamp() - time.time())
