"""HTTP lookups for the IVR's ``lookup`` nodes: GET a URL, read JSON.

One aiohttp client session for the engine (connection reuse), opened on
first use.  Anything but a 200 with a JSON object is a failure (the flow's
``on_error`` branch); the caller of :meth:`HttpLookup.get` applies the
node's timeout.

``origins`` sends the lookups addressed to one origin (scheme, host and
port) to another, the rest of the URL kept: ``acd demo`` serves the example
self-service back end (:mod:`acd.loadsim.selfservice`) on a free port and
routes the flow's ``http://127.0.0.1:8099`` there, the flow unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Mapping

import aiohttp

from acd.logs import brief, mask, printable, showing_private

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024


class HttpLookupError(Exception):
    """A lookup that failed: ``<url>: <problem>``.  The URL is shown without
    its user and password, and (unless ``logging: show_caller_data``) with
    its query values and every run of 5 or more digits in it masked: a
    lookup URL carries the caller's number or what they keyed in."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(url, problem)
        self.url = url
        self.problem = problem

    def __str__(self) -> str:
        return f"{shown_url(self.url)}: {self.problem}"


_DIGITS = re.compile(r"\d{5,}")


def shown_url(url: str) -> str:
    """``url`` for a log line: no user or password; query values and long
    digit runs masked unless callers' data is shown."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<a malformed URL>"
    query = parts.query
    path = parts.path
    if not showing_private():
        query = "&".join(f"{k}=*" for k, _ in urllib.parse.parse_qsl(
            query, keep_blank_values=True))
        path = _DIGITS.sub(lambda m: mask(m.group()), path)
    shown = urllib.parse.urlunsplit((parts.scheme, host, path, query, ""))
    return printable(shown, newlines=False)


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of an absolute URL, lower case, the port filled
    in for http and https; ValueError for a malformed one."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or DEFAULT_PORTS.get(scheme)


class HttpLookup:
    def __init__(self, origins: Mapping[str, str] | None = None) -> None:
        """``origins``: origin -> origin (``"http://127.0.0.1:8099"`` ->
        ``"http://127.0.0.1:41234"``): a lookup to the first goes to the
        second, its path and query kept."""
        self._session: aiohttp.ClientSession | None = None
        self._origins = {origin(a): urllib.parse.urlsplit(b)
                         for a, b in (origins or {}).items()}

    def routed(self, url: str) -> str:
        """Where a lookup of ``url`` goes (``origins``)."""
        if not self._origins:
            return url
        try:
            to = self._origins.get(origin(url))
        except ValueError:
            return url  # the GET says what is wrong with it
        if to is None:
            return url
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((to.scheme, to.netloc, parts.path, parts.query,
                                        parts.fragment))

    async def get(self, url: str, timeout_s: float) -> Mapping[str, object] | None:
        url = self.routed(url)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": "acd-ivr"})
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.get(url, timeout=timeout, allow_redirects=False) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    raise HttpLookupError(url, f"HTTP {resp.status}")
                body = await resp.content.read(MAX_BODY + 1)
                if len(body) > MAX_BODY:
                    raise HttpLookupError(url, f"answer over {MAX_BODY} bytes")
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise HttpLookupError(url, f"not JSON ({exc})") from None
        except aiohttp.ClientError as exc:
            raise HttpLookupError(url, brief(exc)) from None
        if not isinstance(data, dict):
            raise HttpLookupError(url, "the answer is not a JSON object")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
