"""What the command modules of :mod:`acd.cli` share: the consoles, the
defaults read from ./acd.yaml, the database runner, the control-API client
and the profile-editing options.

Database commands (``--db``): :func:`db_option`, :func:`run_db` (exit 3 on
a database failure).  Engine commands (``--api``): :func:`api_option`,
:func:`call_api` (exit 1 when the engine refuses, 4 when it cannot be
reached).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.storage import Database
from acd.core.profiles import AGE_BANDS
from acd.loaders.profile_fields import (
    FieldError,
    parse_extension,
    parse_gender,
    parse_key,
    parse_level,
    parse_list,
)

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never wrap file:line: messages

CONFIG_FILE = "acd.yaml"
DEFAULT_DB = "sqlite+aiosqlite:///acd.db"
DEFAULT_API_PORT = 8088
REQUEST_TIMEOUT_S = 5.0
EXIT_REFUSED, EXIT_DATABASE, EXIT_UNREACHABLE = 1, 3, 4

_R = TypeVar("_R")


def levels(m: Any) -> str:
    """``billing:5 vip:3`` for a name → level mapping; '-' for none."""
    return " ".join(f"{k}:{v}" for k, v in sorted(m.items())) or "-"


def _local_config(what: str, option: str) -> dict[str, Any]:
    """The top level of ./acd.yaml (empty if there is none), for the defaults
    of --db and --api; only the keys asked for are read from it."""
    path = Path(CONFIG_FILE)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise click.ClickException(f"cannot read {what} from {path}: {exc}; "
                                   f"give {option}") from None
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------- database


def default_db() -> str:
    """The ``database`` of ./acd.yaml if it names one, else the SQLite default."""
    url = _local_config("the database", "--db").get("database")
    return url if isinstance(url, str) and url else DEFAULT_DB


def default_country() -> str:
    """The ``country_code`` of ./acd.yaml (for numbers in a national form),
    else 86: the commands that take phone numbers normalise them as the
    engine does (:mod:`acd.core.numbers`)."""
    from acd.core.numbers import DEFAULT_COUNTRY, CountryError, parse_country

    raw = _local_config("the country code", "a readable acd.yaml").get("country_code")
    try:
        return parse_country(str(raw)) if raw is not None else DEFAULT_COUNTRY
    except CountryError as exc:
        raise click.ClickException(f"{CONFIG_FILE}: country_code: {exc}") from None


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--db URL`` (keyword ``db_url``; None: :func:`default_db`)."""
    return click.option("--db", "db_url", default=None, metavar="URL",
                        help="Database URL (default: `database` of ./acd.yaml, "
                             f"else {DEFAULT_DB}).")(f)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<database URL>"


def run_db(db_url: str | None, work: Callable[[Database], Coroutine[Any, Any, _R]]) -> _R:
    """Open the database (creating missing tables), run ``work`` with it, close
    it.  A database failure ends the command with exit code 3."""
    url = db_url or default_db()

    async def go() -> _R:
        db = Database(url)
        try:
            await db.create()
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        err_console.print(f"[red]database error[/red] ({escape(safe_url(url))}): "
                          f"{escape(str(exc).splitlines()[0] if str(exc) else repr(exc))}")
        sys.exit(EXIT_DATABASE)


# ------------------------------------------------------------ control API


class EngineUnreachable(Exception):
    """Nothing (or not the engine) answers at the API address."""


class ApiRefused(Exception):
    """The engine answered with an error (4xx/5xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def default_api() -> str:
    """``http://<api_host>:<api_port>`` from ./acd.yaml if it has them, else port 8088
    on 127.0.0.1."""
    data = _local_config("api_port", "--api")
    host, port = "127.0.0.1", DEFAULT_API_PORT
    p = data.get("api_port")
    if isinstance(p, int) and not isinstance(p, bool) and 0 < p <= 65535:
        port = p
    h = data.get("api_host")
    if isinstance(h, str) and h and h not in ("0.0.0.0", "::"):
        host = h
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Client:
    """A tiny synchronous JSON client for the control API (urllib)."""

    def __init__(self, base: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        base = base.strip().rstrip("/")
        self.base = base if "://" in base else f"http://{base}"
        self.timeout = timeout

    def get(self, path: str) -> Any:
        return self._request("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request("POST", path, body or {})

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        if urllib.parse.urlsplit(self.base).scheme not in ("http", "https"):
            raise EngineUnreachable("the API URL must start with http://")
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = str(json.loads(raw)["error"])
            except (ValueError, KeyError, TypeError):
                raise EngineUnreachable(f"HTTP {exc.code} without an acd error "
                                        "(is that the engine's api_port?)") from None
            raise ApiRefused(exc.code, message) from None
        except urllib.error.URLError as exc:
            raise EngineUnreachable(str(exc.reason)) from None
        except (OSError, http.client.HTTPException) as exc:  # incl. TimeoutError
            raise EngineUnreachable(str(exc) or type(exc).__name__) from None
        except ValueError as exc:  # not an http:// URL at all
            raise EngineUnreachable(f"bad URL: {exc}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineUnreachable("the answer is not JSON "
                                    "(is that the engine's api_port?)") from None


def _unreachable(url: str, why: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] cannot reach the engine at {escape(url)}: "
                      "is `acd serve` running with api_port set?", soft_wrap=True)
    err_console.print(f"({escape(why)})", style="dim")
    sys.exit(EXIT_UNREACHABLE)


def call_api(api: str | None, work: Callable[[Client], _R]) -> _R:
    """Run ``work`` against the API (``api``, else :func:`default_api`);
    refusals exit 1, an unreachable engine exits 4."""
    client = Client(api or default_api())
    try:
        return work(client)
    except EngineUnreachable as exc:
        _unreachable(client.base, str(exc))
    except ApiRefused as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
        sys.exit(EXIT_REFUSED)


def api_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--api URL`` (None: :func:`default_api`)."""
    return click.option("--api", default=None, metavar="URL",
                        help="The engine's control API (default: api_host/api_port of "
                             f"./acd.yaml, else http://127.0.0.1:{DEFAULT_API_PORT}).")(f)


# -------------------------------------------------------- profile options


def _option_value(parse: Callable[[str], _R]) -> Callable[[click.Context, click.Parameter, Any],
                                                          Any]:
    """A click callback running a profile-file parser (errors name the option)."""
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, tuple):
                return tuple(parse(v.strip()) for v in value)
            return parse(value.strip())
        except FieldError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return callback


def _name_level(raw: str) -> tuple[str, int]:
    name, sep, level = raw.partition("=")
    name, level = name.strip(), level.strip()
    if not sep or not name or not level:
        raise FieldError(f"{raw!r} must be NAME=LEVEL, e.g. billing=5")
    parse_key(name)
    try:
        return name, parse_level(level)
    except FieldError:
        raise FieldError(f"{raw!r}: level {level!r} is not a whole number 1-10") from None


def _group(raw: str) -> str:
    if not raw:
        raise FieldError("a group name cannot be empty")
    if ";" in raw:
        raise FieldError(f"{raw!r}: give one group per --group")
    (name,) = parse_list(raw)
    return name


_PROFILE_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--skill", "skills", multiple=True, metavar="NAME=LEVEL",
                 callback=_option_value(_name_level),
                 help="Set a skill's level (1-10); repeatable."),
    click.option("--drop-skill", "drop_skills", multiple=True, metavar="NAME",
                 help="Remove a skill; repeatable."),
    click.option("--dialect", "dialects", multiple=True, metavar="NAME=LEVEL",
                 callback=_option_value(_name_level),
                 help="Set a dialect's proficiency (1-10); repeatable."),
    click.option("--drop-dialect", "drop_dialects", multiple=True, metavar="NAME",
                 help="Remove a dialect; repeatable."),
    click.option("--gender", metavar="F|M", callback=_option_value(parse_gender),
                 help="F or M (female/male also accepted)."),
    click.option("--age-band", type=click.Choice(AGE_BANDS), help="Age band."),
    click.option("--group", "groups", multiple=True, metavar="G", callback=_option_value(_group),
                 help="The agent's groups become exactly these; repeatable."),
    click.option("--vip/--no-vip", default=None, help="May take VIP callers, or not."),
    click.option("--extension", metavar="E", callback=_option_value(parse_extension),
                 help="Phone extension (2-15 digits)."),
]


def profile_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The profile-editing options shared by `acd agents set` (the database)
    and `acd agents live set` (the running engine)."""
    for option in reversed(_PROFILE_OPTIONS):
        f = option(f)
    return f
