"""HTTP lookups for the IVR's ``lookup`` nodes: GET a URL, read JSON.

One aiohttp client session for the engine (connection reuse), opened on
first use.  Anything but a 200 with a JSON object is a failure (the flow's
``on_error`` branch); the caller of :meth:`HttpLookup.get` applies the
node's timeout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import aiohttp

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024


class HttpLookupError(Exception):
    pass


class HttpLookup:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str, timeout_s: float) -> Mapping[str, object] | None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": "acd-ivr"})
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.get(url, timeout=timeout, allow_redirects=False) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    raise HttpLookupError(f"{url}: HTTP {resp.status}")
                body = await resp.content.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    raise HttpLookupError(f"{url}: answer over {MAX_BODY} bytes")
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise HttpLookupError(f"{url}: not JSON ({exc})") from None
        except aiohttp.ClientError as exc:
            raise HttpLookupError(f"{url}: {exc}") from None
        if not isinstance(data, dict):
            raise HttpLookupError(f"{url}: the answer is not a JSON object")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
