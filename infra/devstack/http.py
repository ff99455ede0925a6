"""Minimal HTTP client for readiness checks and the Prometheus API (loopback only).

Uses ``urllib`` without proxy handlers, so ``HTTP_PROXY`` and friends never route a
loopback request elsewhere, and refuses any URL whose host is not ``127.0.0.1``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ticktape.infra.devstack.ports import LOOPBACK

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _check_loopback(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname != LOOPBACK:
        raise ValueError(f"url: expected http://{LOOPBACK}:<port>/..., got {url!r}")


def http_request(
    url: str, *, data: bytes | None = None, method: str | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """Send one request; return ``(status, body)`` for any HTTP answer (also 4xx/5xx).

    Raises ``OSError`` (``URLError``, connection refused, timeout) when nothing answers.
    """
    _check_loopback(url)
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def http_get(url: str, *, timeout: float = 5.0, ok_only: bool = False) -> bytes:
    """GET ``url``; with ``ok_only`` a non-2xx status raises ``ConnectionError``."""
    status, body = http_request(url, timeout=timeout)
    if ok_only and not 200 <= status < 300:
        raise ConnectionError(f"GET {url}: HTTP {status}: {body[:200]!r}")
    return body


def http_post(url: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """POST ``data`` to ``url``; a non-2xx status raises ``ConnectionError``."""
    status, body = http_request(url, data=data, method="POST", timeout=timeout)
    if not 200 <= status < 300:
        raise ConnectionError(f"POST {url}: HTTP {status}: {body[:200]!r}")
    return body


def get_json(url: str, *, timeout: float = 5.0) -> Any:
    """GET ``url`` and decode its JSON body (non-2xx raises ``ConnectionError``)."""
    return json.loads(http_get(url, timeout=timeout, ok_only=True))
