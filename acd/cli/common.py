"""What the command modules of :mod:`acd.cli` share: the consoles, the
defaults read from ./acd.yaml, the database runner, the control-API client
and the profile-editing options.

Database commands (``--db``): :func:`db_option`, :func:`run_db` (exit 3 on
a database failure).  Engine commands (``--api``, ``--token``): :func:`api_option`,
:func:`call_api` (exit 1 when the engine refuses, 4 when it cannot be
reached, 5 when it refuses the credentials).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import http.client
import io
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.storage import Database, MissingDriver, sqlite_file
from acd.api.auth import ApiSetupError, read_token_file
from acd.api.config import DEFAULT_TOKEN_FILE, is_loopback
from acd.core.profiles import AGE_BANDS
from acd.loaders.profile_fields import (
    FieldError,
    parse_extension,
    parse_gender,
    parse_key,
    parse_level,
    parse_list,
)
from acd.loaders.yamlpos import YamlError, load_plain
from acd.logs import printable

if TYPE_CHECKING:
    from acd.runtime.settings import EngineConfig

#: the width of tables written to a pipe or a file (not a terminal) when
#: $COLUMNS does not say: wide, so that nothing is cut (rich's 80 would cut
#: the columns of ``acd report calls | cat``)
PIPE_WIDTH = 240


class _Console(Console):
    """A console whose width, when it does not write to a terminal and
    $COLUMNS is not set, is :data:`PIPE_WIDTH`."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and "COLUMNS" not in self._environ and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console()
err_console = Console(stderr=True, soft_wrap=True)  # never wrap file:line: messages

CONFIG_FILE = "acd.yaml"
DEFAULT_DB = "sqlite+aiosqlite:///acd.db"
#: the SQLite file ``acd demo`` writes by default (its --db), beside where acd.db would be
DEMO_DB_FILE = "acd-demo.db"
DEFAULT_API_PORT = 8088
REQUEST_TIMEOUT_S = 5.0
EXIT_REFUSED, EXIT_DATABASE, EXIT_UNREACHABLE, EXIT_UNAUTHORIZED = 1, 3, 4, 5
#: the control API's credentials (see :func:`call_api`)
TOKEN_ENV, TOKEN_FILE_ENV = "ACD_API_TOKEN", "ACD_API_TOKEN_FILE"
CA_ENV, CERT_ENV, KEY_ENV = "ACD_API_CA", "ACD_API_CERT", "ACD_API_KEY"
#: set (to 1) to send the token over plain http to a host that is not loopback
PLAIN_HTTP_ENV = "ACD_API_ALLOW_PLAIN_HTTP"
_TOKEN_META = "acd.api_token"
_TOKEN_BY_META = "acd.api_token_by"  # where it came from: --token or $ACD_API_TOKEN

_R = TypeVar("_R")


def levels(m: Any) -> str:
    """``billing:5 vip:3`` for a name → level mapping; '-' for none."""
    return " ".join(f"{k}:{v}" for k, v in sorted(m.items())) or "-"


def shown(value: object) -> str:
    """A value from outside (a caller's name, an SMS text, a file's content)
    for rich to print: control characters escaped (``\\x1b``: no escape
    sequence reaches the terminal), then rich's markup escaped."""
    return escape(printable("" if value is None else str(value)))


class FileProblem(click.ClickException):
    """A file cannot be read or is wrong (./acd.yaml, a --config): exit 2,
    as for every file that cannot."""

    exit_code = 2


_FileError = FileProblem


def config_option(config_path: str | None) -> EngineConfig | None:
    """The configuration a planning or report command reads its database,
    zone and service levels from: ``--config``, else ./acd.yaml if there is
    one, else None.  A file that cannot be read is a :class:`FileProblem`."""
    from acd.ivr.parse import FlowError
    from acd.runtime.settings import ConfigError, load_config

    path = config_path
    if path is None:
        if not Path("acd.yaml").is_file():
            return None
        path = "acd.yaml"
    try:
        return load_config(path)
    except (ConfigError, FlowError) as exc:  # exit 2, as for every file that cannot be read
        raise FileProblem(str(exc)) from None


def write_csv(path_or_dash: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """A CSV (``columns``, then ``rows``) to a file, or to standard output for
    ``-`` (on a terminal, not a pipe, with control characters escaped:
    nothing may drive it).  A file is told of on the console; one that cannot
    be written exits 2.  Returns the number of rows."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    count = 0
    for row in rows:
        w.writerow(row)
        count += 1
    if write_text_output(path_or_dash, buf.getvalue()):
        console.print(f"wrote {shown(path_or_dash)} ({count} rows)")
    return count


def write_text_output(path_or_dash: str | Path, text: str) -> bool:
    """``text`` (a CSV, a roster...) to a file, or to standard output for
    ``-`` (on a terminal with control characters escaped).  A file that cannot
    be written is a :class:`FileProblem` (exit 2).  True when a file was
    written (its caller says so)."""
    if str(path_or_dash) == "-":
        if sys.stdout.isatty():
            text = printable(text.replace("\r\n", "\n"))
        click.echo(text, nl=False)
        return False
    try:
        with open(path_or_dash, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise _FileError(f"{path_or_dash}: cannot write: {exc.strerror or exc}") from None
    return True


def _local_config(what: str, option: str) -> dict[str, Any]:
    """The top level of ./acd.yaml (empty if there is none), for the defaults
    of --db and --api; only the keys asked for are read from it."""
    path = Path(CONFIG_FILE)
    if not path.is_file():
        return {}
    try:  # bounded like every file read (acd.loaders.yamlpos): exit 2 naming the place
        data = load_plain(path)
    except YamlError as exc:
        raise _FileError(f"{exc} (reading {what} from it; or give {option})") from None
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


#: the database commands that only read it (path below ``acd``): they refuse
#: a SQLite file that does not exist rather than make an empty one and
#: report nothing from it (a mistyped --db); the others (imports, ``acd qa
#: sample``/``score``, ...) create it
READ_ONLY_COMMANDS = frozenset({
    ("report", "calls"), ("report", "sms"), ("qa", "list"), ("qa", "report"),
    ("qa", "export"), ("explain",), ("customers", "show"), ("agents", "list"),
    ("sms", "optout", "list"), ("sms", "outbox"), ("report", "fit"), ("forecast",),
    ("roster", "import"),
})


def _command_path() -> tuple[str, ...]:
    """The running command's names below the top group (``("report", "calls")``)."""
    ctx = click.get_current_context(silent=True)
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def missing_database(url: str) -> str | None:
    """Why a read-only command cannot use ``url``: a SQLite file that does
    not exist (None: it exists, or it is another database)."""
    path = sqlite_file(url)
    if path is None or os.path.exists(path):
        return None
    why = (f"no database at {path} (acd serve creates it; check --db or database: "
           f"in {CONFIG_FILE})")
    folder, name = os.path.split(path)
    demo = os.path.join(folder, DEMO_DB_FILE)
    if name == os.path.basename(sqlite_file(DEFAULT_DB) or "") and os.path.exists(demo):
        # `acd demo` writes its own file, not the default one
        here = os.path.abspath(folder) == os.path.abspath(os.getcwd())
        url = f"sqlite+aiosqlite:///{DEMO_DB_FILE if here else demo}"
        why += f"; acd demo writes {DEMO_DB_FILE}: add --db {url}"
    return why


def run_db(db_url: str | None, work: Callable[[Database], Coroutine[Any, Any, _R]],
           *, read_only: bool | None = None) -> _R:
    """Open the database (creating missing tables), run ``work`` with it, close
    it.  A database failure ends the command with exit code 3; a driver that
    is not installed, or for a command that only reads (``read_only``; None:
    the command is in :data:`READ_ONLY_COMMANDS`) a SQLite file that does not
    exist, with 2."""
    url = db_url or default_db()
    if read_only is None:
        read_only = _command_path() in READ_ONLY_COMMANDS
    if read_only and (why := missing_database(url)) is not None:
        err_console.print(f"[red]error:[/red] {shown(why)}")
        sys.exit(2)

    async def go() -> _R:
        db = Database(url)
        try:
            await db.create()
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except MissingDriver as exc:
        err_console.print(f"[red]error:[/red] {shown(exc)}")
        sys.exit(2)
    except (SQLAlchemyError, OSError) as exc:
        err_console.print(f"[red]database error[/red] ({escape(safe_url(url))}): "
                          f"{shown(str(exc).splitlines()[0] if str(exc) else repr(exc))}")
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


class ApiUnauthorized(ApiRefused):
    """401 (no or wrong credentials) or 403 (a role too low), or the
    credentials could not be used at all (status 0)."""


def _api_block(data: dict[str, Any]) -> dict[str, Any]:
    api = data.get("api")
    return api if isinstance(api, dict) else {}


def default_api() -> str:
    """``http(s)://<host>:<port>`` of the ``api:`` block of ./acd.yaml (or its old
    spelling ``api_host``/``api_port``), https when it has ``tls``; else
    http://127.0.0.1:8088."""
    data = _local_config("api_port", "--api")
    block = _api_block(data)
    host, port = "127.0.0.1", DEFAULT_API_PORT
    p = block.get("port", data.get("api_port"))
    if isinstance(p, int) and not isinstance(p, bool) and 0 < p <= 65535:
        port = p
    h = block.get("host", data.get("api_host"))
    if isinstance(h, str) and h and h not in ("0.0.0.0", "::"):
        host = h
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if block.get("tls") else "http"
    return f"{scheme}://{host}:{port}"


def default_token_file() -> Path:
    """The control API's token file: $ACD_API_TOKEN_FILE, else ``api.token_file``
    of ./acd.yaml (relative to its folder, here), else ./acd-api.tokens."""
    env = os.environ.get(TOKEN_FILE_ENV)
    if env:
        return Path(env)
    raw = _api_block(_local_config("the API token file", f"--token or ${TOKEN_ENV}")) \
        .get("token_file")
    return Path(raw) if isinstance(raw, str) and raw else Path(DEFAULT_TOKEN_FILE)


def api_credentials(token: str | None, given_by: str = "--token") -> tuple[str | None, str]:
    """The token to send and where it came from (for messages): ``token``
    (``given_by``: --token or $ACD_API_TOKEN), else the admin token of the
    token file; (None, why) when there is none (why: ``no token: ...``).
    :class:`ApiUnauthorized` when the token file cannot be used (readable by
    others, not a token file)."""
    if token:
        return token.strip(), given_by
    path = default_token_file()
    try:
        tokens = read_token_file(path, owner=False)
    except FileNotFoundError:
        return None, (f"no token: {path} does not exist (the engine makes it when it starts "
                      "with api.port set; run this beside acd.yaml, or give --token or "
                      f"${TOKEN_ENV})")
    except ApiSetupError as exc:
        raise ApiUnauthorized(0, str(exc)) from None
    except OSError as exc:
        raise ApiUnauthorized(0, f"{path}: cannot read the token file: "
                                 f"{exc.strerror or exc}") from None
    return tokens.best(), f"the token file {path}"


def _tls_context() -> ssl.SSLContext:
    """How the commands check an https engine: the system's CAs, or
    $ACD_API_CA; a client certificate from $ACD_API_CERT and $ACD_API_KEY
    (mutual TLS)."""
    ca, cert, key = (os.environ.get(n) or None for n in (CA_ENV, CERT_ENV, KEY_ENV))
    try:
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f for f in (ca, cert, key) if f)
        raise ApiUnauthorized(0, f"{files}: cannot load the TLS files (${CA_ENV}, "
                                 f"${CERT_ENV}, ${KEY_ENV}): "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
    return ctx


class _Redirected(Exception):
    def __init__(self, code: int, location: str) -> None:
        super().__init__(code, location)
        self.code, self.location = code, location


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: urllib would send the ``Authorization`` header
    along to wherever it points (the engine never redirects)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        fp.close()
        raise _Redirected(code, newurl)


def plain_http_refusal(url: str) -> str | None:
    """Why the token may not be sent to ``url`` (plain http to a host that
    is not loopback, unless ``$ACD_API_ALLOW_PLAIN_HTTP``); None: it may."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or is_loopback(parts.hostname or ""):
        return None
    if os.environ.get(PLAIN_HTTP_ENV, "").strip().lower() in ("1", "true", "yes"):
        return None
    return (f"{url}: refusing to send the API token over plain http to a host that is not "
            f"this machine (anyone on the path could take it). Use https:// (api.tls on the "
            f"engine), or an SSH tunnel to its 127.0.0.1; to send it anyway, set "
            f"{PLAIN_HTTP_ENV}=1")


class Client:
    """A tiny synchronous JSON client for the control API (urllib); sends
    ``token`` as ``Authorization: Bearer`` (never over plain http to a host
    that is not loopback: :func:`plain_http_refusal`; never along a redirect:
    redirects are refused)."""

    def __init__(self, base: str, timeout: float = REQUEST_TIMEOUT_S,
                 token: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        base = base.strip().rstrip("/")
        self.base = base if "://" in base else f"http://{base}"
        self.timeout = timeout
        self.token = token
        self.tls = tls

    def get(self, path: str) -> Any:
        return self._request("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request("POST", path, body or {})

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        scheme = urllib.parse.urlsplit(self.base).scheme
        if scheme not in ("http", "https"):
            raise EngineUnreachable("the API URL must start with http:// or https://")
        if scheme == "https" and self.tls is None:
            self.tls = _tls_context()
        if self.token:
            refusal = plain_http_refusal(self.base)
            if refusal is not None:
                raise ApiUnauthorized(0, refusal)
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        if self.token:  # and if a redirect were followed after all, not along it
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self.tls))
        elif is_loopback(urllib.parse.urlsplit(self.base).hostname or ""):
            handlers.append(urllib.request.ProxyHandler({}))  # $http_proxy: not for loopback
        try:
            with urllib.request.build_opener(*handlers).open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except _Redirected as exc:
            raise EngineUnreachable(f"it answered {exc.code}, a redirect to "
                                    f"{printable(exc.location, newlines=False)[:200]}; the "
                                    "commands do not follow redirects (the token would go "
                                    "along): give --api the engine's own URL") from None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = str(json.loads(raw)["error"])
            except (ValueError, KeyError, TypeError):
                raise EngineUnreachable(f"HTTP {exc.code} without an acd error "
                                        "(is that the engine's api port?)") from None
            if exc.code in (401, 403):
                raise ApiUnauthorized(exc.code, message) from None
            raise ApiRefused(exc.code, message) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise ApiUnauthorized(0, f"TLS: {exc.reason}") from None
            raise EngineUnreachable(str(exc.reason)) from None
        except ssl.SSLError as exc:  # e.g. a client certificate the engine wants, missing
            raise ApiUnauthorized(0, f"TLS: {exc}") from None
        except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
            if scheme == "https" and not os.environ.get(CERT_ENV):
                # TLS 1.3: an engine that wants a client certificate closes the
                # connection after the handshake, without an answer
                raise ApiUnauthorized(0, f"TLS: the engine closed the connection without an "
                                         f"answer ({exc or type(exc).__name__}): does it want a "
                                         f"client certificate (api.tls.client_ca)? Give it in "
                                         f"${CERT_ENV} and ${KEY_ENV}") from None
            raise EngineUnreachable(str(exc) or type(exc).__name__) from None
        except (OSError, http.client.HTTPException) as exc:  # incl. TimeoutError
            raise EngineUnreachable(str(exc) or type(exc).__name__) from None
        except ValueError as exc:  # not an http:// URL at all
            raise EngineUnreachable(f"bad URL: {exc}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineUnreachable("the answer is not JSON "
                                    "(is that the engine's api port?)") from None


def _unreachable(url: str, why: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] cannot reach the engine at {escape(url)}: "
                      "is `acd serve` running with api.port set?", soft_wrap=True)
    err_console.print(f"({escape(why)})", style="dim")
    sys.exit(EXIT_UNREACHABLE)


def _unauthorized(exc: ApiUnauthorized, source: str) -> NoReturn:
    """One sentence naming where the token came from (``source``:
    :func:`api_credentials`); a hint only when no token was found."""
    why = exc.message.removeprefix("unauthorized: ").removeprefix("forbidden: ")
    hint = ""
    if exc.status == 403:
        text = f"not allowed: {why}; the token came from {source}"
    elif exc.status == 401 and source.startswith("no token"):
        text, hint = f"the engine refused the request, sent without a token: {why}", source
    elif exc.status == 401:
        text = f"the engine refused the token from {source}: {why}"
    else:  # the credentials could not be used at all (a token file, TLS)
        text = exc.message
    err_console.print(f"[red]error:[/red] {escape(text)}", soft_wrap=True)
    if hint:
        err_console.print(f"({escape(hint)})", style="dim", soft_wrap=True)
    sys.exit(EXIT_UNAUTHORIZED)


def call_api(api: str | None, work: Callable[[Client], _R]) -> _R:
    """Run ``work`` against the API (``api``, else :func:`default_api`) with
    the token of --token, $ACD_API_TOKEN or the token file; refusals exit 1,
    refused credentials 5, an unreachable engine 4."""
    ctx = click.get_current_context(silent=True)
    given = ctx.meta.get(_TOKEN_META) if ctx is not None else None
    given_by = ctx.meta.get(_TOKEN_BY_META, "--token") if ctx is not None else "--token"
    source = ""
    try:
        token, source = api_credentials(given, given_by)
        client = Client(api or default_api(), token=token)
        try:
            return work(client)
        except EngineUnreachable as exc:
            _unreachable(client.base, str(exc))
    except ApiUnauthorized as exc:
        _unauthorized(exc, source)
    except ApiRefused as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
        sys.exit(EXIT_REFUSED)


def _keep_token(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[_TOKEN_META] = value
        env = param.name is not None and \
            ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT
        ctx.meta[_TOKEN_BY_META] = f"${TOKEN_ENV}" if env else "--token"


def api_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--api URL`` (None: :func:`default_api`) and ``--token TOKEN`` (kept for
    :func:`call_api`)."""
    f = click.option("--token", envvar=TOKEN_ENV, default=None, metavar="TOKEN",
                     expose_value=False, callback=_keep_token,
                     help=f"A control API token (default: ${TOKEN_ENV}, else the admin token "
                          f"of the token file: api.token_file of ./acd.yaml, else "
                          f"./{DEFAULT_TOKEN_FILE}).")(f)
    return click.option("--api", envvar="ACD_API", default=None, metavar="URL",
                        help="The engine's control API (default: $ACD_API, else api.host/"
                             f"api.port of ./acd.yaml, else http://127.0.0.1:{DEFAULT_API_PORT})."
                        )(f)


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


def tz_option_zone(name: str | None, configured: str | None = None) -> dt.tzinfo:
    """``--tz``, else the configuration's ``statistics.tz``, else this machine's
    zone (as the engine's live statistics do); a bad name is a usage error of
    ``--tz``."""
    name = name if name is not None else configured
    if name is None:
        from acd.runtime.settings import local_zone

        return local_zone()
    from acd.ivr.hours import HoursError, zone

    try:
        return zone(name)
    except HoursError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None


def time_option_value(value: str, tz: dt.tzinfo, what: str, *, end: bool) -> dt.datetime:
    """A ``--since``/``--from``/``--until``/``--to`` value as an aware time in
    ``tz``: ``2026-11-23`` (a day: its start, or with ``end`` the next day's
    start) or ``2026-11-23 14:30`` (local in ``tz``, or with its own offset,
    then converted to ``tz``).  click.BadParameter naming ``what`` otherwise."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), tz)
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day like 2026-11-23 or a time like "
                                 "'2026-11-23 14:30'", param_hint=what) from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t.astimezone(tz)


#: how far before the start of what is read an agent's last state change is
#: looked for (its state at the start); an agent with no change in that span
#: starts unknown
SEED_LOOKBACK_S = 31 * 86400.0


def seed_event_rows(conn: Any, since: float) -> list[Any]:
    """The ``agent_events`` rows at each agent's last change in the
    :data:`SEED_LOOKBACK_S` before ``since`` (epoch seconds), in (at, id)
    order: at one instant the later id is the agent's state at ``since``.
    A bounded look-back: the (agent_id, at) and at indexes serve it."""
    from sqlalchemy import func, select

    from acd.adapters.schema import agent_events, utc

    e = agent_events.c
    last_at = select(e.agent_id, func.max(e.at).label("at")).where(
        e.at < utc(since), e.at >= utc(since - SEED_LOOKBACK_S)).group_by(e.agent_id).subquery()
    found = select(agent_events).join(
        last_at, (e.agent_id == last_at.c.agent_id) & (e.at == last_at.c.at)).order_by(
        e.at, e.id)
    return list(conn.execute(found).mappings())


def event_rows(conn: Any, since: float | None, until: float) -> Any:
    """The ``agent_events`` rows in [since, until) (since None: all before
    ``until``), in (at, id) order: the order things happened."""
    from sqlalchemy import select

    from acd.adapters.schema import agent_events, utc

    e = agent_events.c
    q = select(agent_events).where(e.at < utc(until))
    if since is not None:
        q = q.where(e.at >= utc(since))
    return conn.execute(q.order_by(e.at, e.id)).mappings()
