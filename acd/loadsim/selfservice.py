"""The example self-service back end: the account service that the sample
hotline's ``lookup`` nodes call for balance and data left
(``ivr_flows/hotline.yaml``) and for the lost-SIM service password
(``ivr_flows/sub/verify_password.yaml``), from a CSV file of accounts.

Start it with one command (docs/selfservice.md)::

    python3 examples/selfservice.py [--port 8099] [--accounts examples/accounts.csv]

It answers ``GET /account?msisdn=NUMBER``:

======  ==============================================================
200     ``{"msisdn": "+8613800138000", "balance": "56.80",
        "currency": "CNY", "plan": "...", "data": {"left_mb": 2048}}``
404     ``{"error": "no account for this number"}``: the flow's
        ``on_error`` (the caller is passed to an agent)
400     ``{"error": ...}``: no ``msisdn``, two of them, or one that is
        not a phone number
======  ==============================================================

``GET /verify?msisdn=NUMBER&password=DIGITS`` answers ``{"result": "yes"}``
or ``{"result": "no"}`` (404 and 400 as above); after :data:`MAX_WRONG`
wrong passwords in a row a number is locked (``"no"``, ``"locked": true``)
until the back end restarts.  ``GET /health``: ``{"ok": true, "accounts":
12}``.  Another path is a 404, another method a 405, both with a JSON
``error``.  The balance is a string with two decimals, exact (the flow's
``say: money`` reads it as yuan and fen); ``data.left_mb`` a whole number.

**Numbers.**  The caller id is what Asterisk gives: ``13800138000``,
``+8613800138000``, ``8613800138000`` ...; the engine percent-encodes it
(``%2B86...``).  The query's escapes are decoded and a bare ``+`` (from
another client) is kept, not taken as form encoding's space; every form of a number is
one account (:func:`acd.core.numbers.normalize`, for ``--country``, 86 by
default), in the file as in a request.

Standard library only (``http.server``, a thread per connection), plus the
engine's own stdlib-only helpers for numbers, masking and reading files, so
that ``python3 examples/selfservice.py`` runs from a checkout with any
Python 3.11.  Each request is logged on one line with the number masked
(``138****8000``; shown with the ``logging: show_caller_data`` setting) and
the password never shown (``password=***``); the raw request line is never
logged, not even at DEBUG.  :class:`SelfService` runs it on a thread: ``acd demo``
and the tests start it on a free port in-process.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import random
import re
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

from acd.core.numbers import DEFAULT_COUNTRY, CountryError, is_number, normalize, parse_country
from acd.loaders.textfile import CSV_MAX_BYTES, TextFileError, csv_records, read_text_file
from acd.logs import SafeFormatter, printable, private

log = logging.getLogger(__name__)

#: where the sample flow's lookups go (``ivr_flows/hotline.yaml``)
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8099
DEFAULT_ORIGIN: Final = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
#: the columns of the accounts file, in any order: these required ...
REQUIRED: Final = ("number", "balance", "plan", "data_left_mb")
#: ... and the service password (6 digits; empty or absent: /verify says no)
COLUMNS: Final = (*REQUIRED, "password")
#: wrong passwords in a row that lock a number's /verify (until a restart)
MAX_WRONG: Final = 5
CURRENCY: Final = "CNY"
#: an idle keep-alive connection is closed after this long: longer than the
#: engine keeps one (aiohttp's 15 s), so that it never reuses one being closed
IDLE_TIMEOUT_S: Final = 60.0
#: problems listed when a file has many
MAX_PROBLEMS: Final = 20

_BALANCE = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,2})?")
_MEGABYTES = re.compile(r"[0-9]{1,12}")
_PASSWORD = re.compile(r"[0-9]{6}")
_MAX_PLAN = 100


# ------------------------------------------------------------------ accounts


@dataclass(frozen=True, slots=True)
class Account:
    number: str  # normalised (+8613800138000)
    balance: Decimal  # yuan
    plan: str
    data_left_mb: int
    #: the service password ("": none; /verify says no)
    password: str = field(default="", repr=False)

    def json(self) -> dict[str, object]:
        """The answer to a lookup of this account."""
        return {"msisdn": self.number, "balance": f"{self.balance:.2f}", "currency": CURRENCY,
                "plan": self.plan, "data": {"left_mb": self.data_left_mb}}


class AccountsError(Exception):
    """An accounts file that cannot be used: every problem, one a line,
    ``file:line:column: problem``."""


def read_accounts(path: str | Path, country: str = DEFAULT_COUNTRY) -> dict[str, Account]:
    """The accounts of a CSV file (:data:`COLUMNS`), by normalised number;
    AccountsError naming each problem's line and column."""
    try:
        text = read_text_file(path, "accounts file", CSV_MAX_BYTES)
    except TextFileError as exc:
        raise AccountsError(str(exc)) from None
    return parse_accounts(text, str(path), country)


def parse_accounts(text: str, file: str = "accounts.csv",
                   country: str = DEFAULT_COUNTRY) -> dict[str, Account]:
    """:func:`read_accounts` of the file's text."""
    problems: list[str] = []
    records = _records(text)
    header_line, header_raw = next(records, (1, None))
    if header_raw is None:
        raise AccountsError(f"{file}:1:1: the file is empty; the first line must be the "
                            f"header: {','.join(COLUMNS)}")
    if isinstance(header_raw, str):
        raise AccountsError(f"{file}:{header_line}:1: the header {header_raw}")
    header = [h.strip().lower() for h in header_raw]
    where = _columns(header_raw)
    for i, h in enumerate(header):
        if h not in COLUMNS or h in header[:i]:
            what = "appears twice" if h in COLUMNS else "is not a column of accounts"
            problems.append(f"{file}:{header_line}:{where[i]}: {h!r} {what} "
                            f"(the columns: {', '.join(COLUMNS)})")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        problems.append(f"{file}:{header_line}:1: the header has no "
                        f"{', '.join(repr(m) for m in missing)} column"
                        f"{'s' if len(missing) > 1 else ''} ({','.join(REQUIRED)})")
    if problems:
        raise AccountsError("\n".join(problems))
    accounts: dict[str, Account] = {}
    lines: dict[str, int] = {}
    for line, cells in records:
        if isinstance(cells, str):
            problems.append(f"{file}:{line}:1: {cells}")
            continue
        if len(cells) != len(header):
            problems.append(f"{file}:{line}:1: {len(cells)} values, but the header has "
                            f"{len(header)} columns")
            continue
        row = {h: (c.strip(), col) for h, c, col in zip(header, cells, _columns(cells),
                                                         strict=True)}
        account = _account(row, f"{file}:{line}", country, problems)
        if account is None:
            continue
        if account.number in lines:
            problems.append(f"{file}:{line}:{row['number'][1]}: number {row['number'][0]} is "
                            f"already on line {lines[account.number]}")
            continue
        accounts[account.number] = account
        lines[account.number] = line
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise AccountsError("\n".join(problems[:MAX_PROBLEMS]
                                      + ([f"... and {more} more"] if more > 0 else [])))
    return accounts


def _records(text: str) -> Iterator[tuple[int, list[str] | str]]:
    """(line, cells) of each line holding a value, or (line, problem)."""
    for line, _, cells in csv_records(text.removeprefix("\ufeff")):
        if isinstance(cells, str) or any(c.strip() for c in cells):
            yield line, cells


def _columns(cells: Sequence[str]) -> list[int]:
    """The column where each cell starts (exact for a line without quotes)."""
    out, at = [], 1
    for cell in cells:
        out.append(at)
        at += len(cell) + 1
    return out


def _account(row: Mapping[str, tuple[str, int]], where: str, country: str,
             problems: list[str]) -> Account | None:
    """One row's account, or None after adding its problems."""
    before = len(problems)

    def bad(column: str, problem: str) -> None:
        problems.append(f"{where}:{row[column][1]}: {problem}")

    number, balance, plan, data = (row[c][0] for c in REQUIRED)
    password = row["password"][0] if "password" in row else ""
    if not is_number(number):
        bad("number", f"number {number!r} is not a phone number (such as 13800138000 or "
                      "+8613800138000)")
    if not _BALANCE.fullmatch(balance):
        bad("balance", f"balance {balance!r} is not an amount in yuan with at most two "
                       "decimals (such as 56.80)")
    if not plan:
        bad("plan", "plan is missing (the name of the caller's plan)")
    elif len(plan) > _MAX_PLAN:
        bad("plan", f"plan is {len(plan)} characters long; at most {_MAX_PLAN}")
    if not _MEGABYTES.fullmatch(data):
        bad("data_left_mb", f"data_left_mb {data!r} is not a whole number of megabytes "
                            "(such as 2048)")
    if password and not _PASSWORD.fullmatch(password):
        bad("password", "password is not 6 digits (the service password the flow asks for; "
                        "empty: none)")
    if len(problems) > before:
        return None
    return Account(normalize(number, country), Decimal(balance), plan, int(data), password)


#: the service password of every demo account
DEMO_PASSWORD: Final = "123456"


def demo_accounts(numbers: Sequence[str], seed: int, known: float = 0.9,
                  country: str = DEFAULT_COUNTRY) -> dict[str, Account]:
    """Accounts for a share ``known`` of ``numbers`` (the rest are unknown:
    their lookups take the flow's ``on_error``), drawn from ``seed``."""
    rng = random.Random(seed)
    plans = ("4G 畅享 58 元", "5G 智享 128 元", "家庭融合 199 元", "流量王 38 元")
    out: dict[str, Account] = {}
    for n in numbers:
        if rng.random() < known:
            cents = rng.randrange(0, 30000)
            account = Account(normalize(n, country), Decimal(cents) / 100, rng.choice(plans),
                              rng.randrange(0, 20480), DEMO_PASSWORD)
            out[account.number] = account
    return out



# ------------------------------------------------------------------ answers


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer a request: the status, the JSON body, what kind of
    request it was (counted: ``account``, ``unknown``, ``bad``, ``health``,
    ``no-path``, ``method``; ``verified``, ``refused``, ``locked`` for
    /verify), the number asked about (for the log) and its account's key."""

    status: int
    body: Mapping[str, object]
    kind: str
    number: str = ""
    account: str = ""


PATHS: Final = ("/account", "/verify", "/health")


def answer(accounts: Mapping[str, Account], method: str, target: str,
           country: str = DEFAULT_COUNTRY, wrong: Mapping[str, int] | None = None) -> Reply:
    """The reply to ``method target`` (``GET /account?msisdn=...``);
    ``wrong``: wrong passwords in a row by account.  Pure: the caller
    counts a ``refused`` or ``verified`` reply into ``wrong``."""
    parts = urllib.parse.urlsplit(target)
    if parts.path not in PATHS:
        return Reply(404, {"error": f"no such path {printable(parts.path)!r}: "
                                    "GET /account?msisdn=NUMBER"}, "no-path")
    if method not in ("GET", "HEAD"):
        return Reply(405, {"error": f"{printable(method)} is not allowed: GET only"}, "method")
    if parts.path == "/health":
        return Reply(200, {"ok": True, "accounts": len(accounts)}, "health")
    query = query_values(parts.query)
    values = query.get("msisdn", [])
    if len(values) != 1:
        return Reply(400, {"error": f"give one msisdn: {parts.path}?msisdn=13800138000"
                           if not values else "give msisdn once"}, "bad")
    asked = values[0].strip()
    if not is_number(asked):
        return Reply(400, {"error": "msisdn is not a phone number (such as 13800138000 or "
                                    "+8613800138000)"}, "bad", asked)
    key = normalize(asked, country)
    account = accounts.get(key)
    if account is None:
        return Reply(404, {"error": "no account for this number"}, "unknown", asked)
    if parts.path == "/account":
        return Reply(200, account.json(), "account", asked, key)
    passwords = query.get("password", [])
    if len(passwords) != 1:
        return Reply(400, {"error": "give one password: /verify?msisdn=...&password=123456"},
                     "bad", asked)
    if (wrong or {}).get(key, 0) >= MAX_WRONG:
        return Reply(200, {"result": "no", "locked": True}, "locked", asked, key)
    right = bool(account.password) and hmac.compare_digest(
        passwords[0].encode(), account.password.encode())
    return Reply(200, {"result": "yes" if right else "no"}, "verified" if right else "refused",
                 asked, key)


#: the query parameter whose value is a caller's number: masked in the log
#: (:func:`acd.logs.mask`) unless ``logging: show_caller_data`` is on
NUMBER_PARAM: Final = "msisdn"
#: what the log shows for any other query value (a password above all):
#: never the value, not even its length, whatever ``show_caller_data`` says
HIDDEN: Final = "***"
#: a number in a path (``/account/+8613800138000``, a client's mistake) or
#: in a line of http.server's
_NUMBER_IN_PATH = re.compile(r"\+?\d{7,}")
#: a request target in a line of http.server's (``GET /verify?... HTTP/1.1``)
_TARGET_IN_TEXT = re.compile(r"\S*\?\S*")


def loggable_target(target: str) -> str:
    """``target`` (``/verify?msisdn=%2B8613800138000&password=123456``) as a
    log line may show it: ``/verify?msisdn=+86*******8000&password=***``.
    The path and the query's names and values are decoded first (an escaped
    value is no way round the mask); a number in the path or the ``msisdn``
    value is shown as :func:`acd.logs.private` shows a caller's number (its
    middle hidden unless ``show_caller_data``); every other value, the
    password above all, as ``***``, always."""
    path, question, query = target.partition("?")
    shown = _NUMBER_IN_PATH.sub(lambda m: str(private(m.group())),
                                urllib.parse.unquote(path))
    if question:
        pairs = []
        for pair in query.split("&"):
            if not pair:
                continue
            name, equals, value = pair.partition("=")
            name = urllib.parse.unquote(name)
            if equals:
                value = (str(private(urllib.parse.unquote(value))) if name == NUMBER_PARAM
                         else HIDDEN)
            shown_name = name if len(name) <= 32 else name[:32] + "..."
            pairs.append(f"{shown_name}{equals}{value}")
        shown += "?" + "&".join(pairs)
    return printable(shown, newlines=False)


def query_values(query: str) -> dict[str, list[str]]:
    """The query's values as the engine writes them: percent-escapes
    decoded, a ``+`` kept (it begins an international number; the engine
    does not form-encode, so it is no space)."""
    out: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            out.setdefault(urllib.parse.unquote(name), []).append(urllib.parse.unquote(value))
    return out


# ------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a connection left open does not hold up the end
    service: SelfService


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "acd-selfservice/1"
    protocol_version = "HTTP/1.1"  # keep-alive: the engine reuses its connections
    timeout = IDLE_TIMEOUT_S

    def do_GET(self) -> None:
        self._reply()

    def do_HEAD(self) -> None:
        self._reply(body=False)

    def do_POST(self) -> None:
        self._reply()

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _reply(self, body: bool = True) -> None:
        started = time.monotonic()
        service = self.server.service
        reply = service.answer(self.command, self.path)
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True  # its body, if any, is not read
        service.count(reply.kind)
        # logged before the reply goes out: whoever has the reply can find its line
        # (a test or a user who stops the service right after a lookup)
        log.info("%s %s %d %s %.1f ms", self.command,
                 loggable_target(urllib.parse.urlsplit(self.path).path),
                 reply.status, private(reply.number) if reply.number else "-",
                 1000 * (time.monotonic() - started))
        log.debug("%s %s %d", self.command, loggable_target(self.path), reply.status)
        self._send(reply.status, reply.body, body, allow=reply.status == 405)

    def _send(self, status: int, data: Mapping[str, object], body: bool = True,
              allow: bool = False) -> None:
        payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if allow:
            self.send_header("Allow", "GET, HEAD")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """http.server's own errors (a malformed request, a method it has no
        handler for) as JSON too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self._send(code, {"error": message or phrase}, body=self.command != "HEAD")
        # neither the message nor the request line: both may quote the raw
        # request (a password in its query); only what was parsed, masked
        command = self.command
        log.info("%s %s %d %s", printable(command or "-", newlines=False),
                 loggable_target(getattr(self, "path", "")) if command else "-",
                 code, phrase or "-")

    # http.server's own lines quote the raw request line ("GET
    # /verify?msisdn=...&password=... HTTP/1.1"): never logged as they are

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: :meth:`_reply` and :meth:`send_error` log each request,
        masked."""

    def log_message(self, format: str, *args: object) -> None:
        """http.server's other lines (a timed-out connection ...), any
        request target in them masked as :func:`loggable_target` does, any
        other number too."""
        text = format % tuple(_TARGET_IN_TEXT.sub(lambda m: loggable_target(m.group()), a)
                              if isinstance(a, str) else a for a in args)
        text = _NUMBER_IN_PATH.sub(lambda m: str(private(m.group())), text)
        log.debug("%s", printable(text, newlines=False))


class SelfService:
    """The back end: :meth:`serve` in the foreground (the command), or
    :meth:`start` on a thread and :meth:`stop` (``acd demo``, the tests;
    also a context manager).  ``port`` 0 takes a free port (:attr:`port`
    tells which)."""

    def __init__(self, accounts: Mapping[str, Account], host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, country: str = DEFAULT_COUNTRY) -> None:
        self.accounts = dict(accounts)
        self.country = country
        self.host = host
        self.port = port
        self._counts: Counter[str] = Counter()
        self._wrong: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        """``http://host:port``: what a flow's lookup URL starts with."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def answer(self, method: str, target: str) -> Reply:
        """:func:`answer`, the wrong passwords counted."""
        with self._lock:
            reply = answer(self.accounts, method, target, self.country, self._wrong)
            if reply.kind == "refused":
                self._wrong[reply.account] = self._wrong.get(reply.account, 0) + 1
            elif reply.kind == "verified":
                self._wrong.pop(reply.account, None)
            return reply

    def count(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def counts(self) -> dict[str, int]:
        """Requests answered so far, by :attr:`Reply.kind`."""
        with self._lock:
            return dict(self._counts)

    def bind(self) -> None:
        """Listen (OSError if the port is taken)."""
        server = _Server((self.host, self.port), _Handler)
        server.service = self
        self._server = server
        self.port = int(server.server_address[1])

    def serve(self) -> None:
        """Answer requests until KeyboardInterrupt (binds first if need be)."""
        if self._server is None:
            self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def start(self) -> None:
        """Bind, then answer requests on a thread of its own."""
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,),
                                        name="selfservice", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop answering (waits at most ``timeout_s`` for the thread)."""
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout_s)
            self._thread = None
        self._server.server_close()
        self._server = None

    def __enter__(self) -> SelfService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ command


def main(argv: Sequence[str] | None = None, default_accounts: Path | None = None) -> int:
    """``python3 examples/selfservice.py``: exit 0 after Ctrl-C, 2 for a bad
    accounts file or option, 5 if it cannot listen."""
    parser = argparse.ArgumentParser(
        prog="examples/selfservice.py",
        description="The example self-service back end for the sample hotline's balance and "
                    "data lookups: GET /account?msisdn=NUMBER answers from a CSV file of "
                    "accounts (docs/selfservice.md).")
    parser.add_argument("--accounts", type=Path, default=default_accounts,
                        required=default_accounts is None,
                        help="CSV file: number,balance,plan,data_left_mb[,password] "
                             "(default: %(default)s)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default: %(default)s, this host only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port to listen on (default: %(default)s, as the sample flow's "
                             "lookups expect)")
    parser.add_argument("--country", default=DEFAULT_COUNTRY,
                        help="country calling code of numbers written without one "
                             "(default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per request")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        country = parse_country(args.country)
    except CountryError as exc:
        parser.error(f"--country: {exc}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port (0-65535)")
    try:
        accounts = read_accounts(args.accounts, country)
    except AccountsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    service = SelfService(accounts, args.host, args.port, country)
    try:
        service.bind()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 5
    print(f"self-service back end: {len(accounts)} accounts from {args.accounts}; "
          f"GET {service.origin}/account?msisdn=NUMBER (Ctrl-C stops)", flush=True)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("listening on %s: whoever reaches this host can read the accounts "
                    "(the example has no authentication)", args.host)
    try:
        service.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover - examples/selfservice.py is the command
    sys.exit(main())
