"""REST book snapshots behind an interface (a local HTTP server in tests: ``ticktape venue-sim``).

:class:`SnapshotClient` is what the connection needs: ``fetch(url) -> body``.
:class:`HttpSnapshotClient` is the real one (``urllib`` on a worker thread, a timeout,
the status and a short excerpt of the body in the error). A rate-limit answer (HTTP 429
or Binance's 418) is a :class:`SnapshotError` with ``retry_after`` from the header; the
connection waits at least that long before it asks again.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Protocol

from ticktape.schemas.errors import SourceError

#: Largest snapshot body read (a 5000-level Binance book is about 250 KB).
MAX_BODY = 16 << 20


class SnapshotError(SourceError):
    """A snapshot request failed; ``retry_after`` (s) when the venue said when to retry."""

    def __init__(self, message: str, *, status: int = 0, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SnapshotClient(Protocol):
    async def fetch(self, url: str) -> bytes:
        """The body of ``url`` (raises :class:`SnapshotError`)."""
        ...


class HttpSnapshotClient:
    """GET over HTTP(S) with ``timeout`` seconds (see the module docstring)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    async def fetch(self, url: str) -> bytes:
        return await asyncio.to_thread(self._get, url)

    def _get(self, url: str) -> bytes:
        if not url.startswith(("http://", "https://")):
            raise SnapshotError(f"snapshot URL must be http(s), got {url[:80]!r}")
        request = urllib.request.Request(url, headers={"User-Agent": "ticktape"})  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                body: bytes = resp.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            excerpt = exc.read(200).decode("utf-8", "replace")
            retry = exc.headers.get("Retry-After", "") if exc.headers else ""
            raise SnapshotError(
                f"GET {_short(url)}: HTTP {exc.code}: {excerpt!r}",
                status=exc.code,
                retry_after=float(retry) if retry.replace(".", "", 1).isdigit() else 0.0,
            ) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise SnapshotError(f"GET {_short(url)}: {getattr(exc, 'reason', exc)}") from None
        if len(body) > MAX_BODY:
            raise SnapshotError(f"GET {_short(url)}: body larger than {MAX_BODY} bytes")
        return body


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
