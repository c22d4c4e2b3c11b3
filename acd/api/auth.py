"""Who may use the control API: bearer tokens from the token file, client
certificates (mutual TLS), and the middleware that checks them.

The token file holds one token per role::

    # acd control API tokens: keep this file private (mode 0600)
    read: 3kq0...
    agent: Zr7P...
    admin: mW1c...

The engine creates it when it is missing (mode 0600, whatever the umask;
written under another name, then linked into place, so that nobody reads it
half written and an existing file is never replaced), and refuses one that
group or others may read or write, or that another user owns.  A request
carries ``Authorization: Bearer <token>``; tokens are compared in constant
time (:func:`hmac.compare_digest`) and never logged.

Answers: 401 with ``WWW-Authenticate: Bearer`` without credentials or with a
wrong token (whatever the path: an unknown one too), 403 when the role is too
low.  Refusals are logged, rate-limited (:class:`acd.logs.Limited`), with the
method, path and peer, never the token.

A browser cannot send that header by itself, so two pages have a cookie
of their own (:class:`BrowserCookie`, one :class:`CookieSpec` each).  The
wallboard's is given for ``GET /wallboard?token=<the read token>`` (answered
with the cookie and a redirect to the clean URL) and lets GETs of the
wallboard's paths in with the read role.  The quality pages' carries the
admin role, whose token never goes in a URL (browser history, proxy and
server logs keep URLs): a browser without it gets a sign-in form (401) whose
password field is posted to ``POST /qa/sign-in`` (:meth:`Guard.sign_in`,
from this server's own page only), answered with the cookie and a redirect
to the page asked for (a ``/qa`` path of this server, never another site);
``GET /qa?token=...`` is refused (400).  That cookie lets GETs of ``/qa``
paths, the score's POST and ``POST /qa/sign-out`` in with the admin role
(a POST only from this server's own page: Origin or Referer); neither
cookie opens anything else.  ``POST /qa/sign-in`` is the one route let in
without credentials (:data:`OPEN_ROUTES`): it is the credential check.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
import os
import re
import secrets
import ssl
import stat
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from acd.api.config import ROLE_NAMES, Role, TlsConfig
from acd.api.requests import ApiError, Handler
from acd.logs import Limited, printable

log = logging.getLogger(__name__)

#: a token: URL-safe base64 and a few more, no spaces
TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")
TOKEN_FILE_MAX = 64 * 1024
#: the role a request was let in with, in ``request[ROLE_KEY]`` (a RequestKey from
#: aiohttp 3.14 on, a plain text before)
_request_key = getattr(web, "RequestKey", None)
ROLE_KEY: Any = _request_key("acd.role", Role) if _request_key is not None else "acd.role"
#: route -> the role it needs (the control app's)
NEEDS: web.AppKey[dict[Any, Role]] = web.AppKey("acd.needs", dict)

#: the wallboard (docs/wallboard.md): its paths, and the cookie that lets a
#: browser in there (an EventSource cannot send an Authorization header)
WALLBOARD_PATH = "/wallboard"
WALLBOARD_COOKIE = "acd_wallboard"
WALLBOARD_COOKIE_MAX_AGE_S = 30 * 86400
#: the quality review pages (docs/quality.md): their paths, and the cookie
#: that lets a reviewer's browser in there with the admin role.  Twelve hours:
#: it carries the admin role (scores, recordings of callers) on a desktop
#: browser; a reviewer signs in once a working day, and a browser left open
#: or a copied cookie is good for that day only
QA_PATH = "/qa"
QA_COOKIE = "acd_qa"
QA_COOKIE_MAX_AGE_S = 12 * 3600
#: the quality pages' sign-in form posts the admin token here (never in a URL)
#: and their sign-out clears the cookie
QA_SIGN_IN_PATH = "/qa/sign-in"
QA_SIGN_OUT_PATH = "/qa/sign-out"
#: the routes let in without credentials, (method, canonical path): the
#: sign-in form's POST only, which checks the token it carries itself.  A
#: route is open only when the application registers it and it is here
OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset({("POST", QA_SIGN_IN_PATH)})
#: the sign-in form's largest body (a token is at most 256 characters), and
#: how long its reading may take
SIGN_IN_MAX_BYTES = 2048
SIGN_IN_READ_S = 10.0
#: the longest ``next`` (the page a sign-in goes back to) kept
NEXT_MAX = 512
#: the headers of a sign-in page: not cached, never in a frame, no script,
#: its form posted to this server only; its Referer is the origin only, so
#: that the form's POST carries its Origin (a ``no-referrer`` page's is ``null``)
SIGN_IN_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src data:; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin",
}

_HEADER = ("# acd control API tokens, one per role (docs/operations.md).\n"
           "# Keep this file private (mode 0600): a token is a password.\n"
           "# Delete the file and restart the engine to issue new tokens.\n")


class ApiSetupError(Exception):
    """The token file or the TLS files cannot be used; the message names the file."""


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Tokens:
    """The tokens of the roles (a role without one cannot be had by token)."""

    by_role: Mapping[Role, str]
    file: Path | None = None

    def role_of(self, token: str) -> Role | None:
        """The role of ``token``, or None; every role's token is compared
        (in constant time), whichever matches."""
        given = token.encode("utf-8", "replace")
        found: Role | None = None
        for role, secret in self.by_role.items():
            if hmac.compare_digest(given, secret.encode()):
                found = role
        return found

    def best(self) -> str | None:
        """The token of the highest role the file gives (the CLI's)."""
        return self.by_role[max(self.by_role)] if self.by_role else None


def new_tokens() -> Tokens:
    return Tokens({role: secrets.token_urlsafe(32) for role in Role})


def _text(tokens: Tokens) -> str:
    return _HEADER + "".join(f"{r.label}: {t}\n" for r, t in sorted(tokens.by_role.items()))


def parse_tokens(text: str, file: Path) -> Tokens:
    """The tokens in a token file's ``text``; errors name ``file:line``."""
    by_role: dict[Role, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = (p.strip() for p in line.partition(":"))
        role = Role.named(name)
        if not sep or role is None:
            raise ApiSetupError(f"{file}:{n}: expected `ROLE: TOKEN` with ROLE one of "
                                f"{', '.join(ROLE_NAMES)}, not {printable(name[:40])!r}")
        if role in by_role:
            raise ApiSetupError(f"{file}:{n}: a second {role.label} token")
        if not TOKEN_RE.fullmatch(token):
            raise ApiSetupError(f"{file}:{n}: the {role.label} token must be 16-256 "
                                "letters, digits or ._~+/=- (no spaces)")
        by_role[role] = token
    if not by_role:
        raise ApiSetupError(f"{file}: no tokens (lines `ROLE: TOKEN`, ROLE one of "
                            f"{', '.join(ROLE_NAMES)}); delete it to have a new one made")
    return Tokens(by_role, file)


def read_token_file(path: Path, *, owner: bool = True) -> Tokens:
    """Read the token file: refused (:class:`ApiSetupError`) when group or
    others may read or write it, or (``owner``) when another user owns it.
    ``FileNotFoundError`` when there is none."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ApiSetupError(f"{path}: the token file is not a regular file")
        if st.st_mode & 0o077:
            raise ApiSetupError(
                f"{path}: the token file may be read or written by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); make it private: chmod 600 {path}")
        if owner and hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise ApiSetupError(f"{path}: the token file belongs to another user (uid "
                                f"{st.st_uid}, not {os.geteuid()}); the engine's user must "
                                "own it")
        data = os.read(fd, TOKEN_FILE_MAX + 1)
    finally:
        os.close(fd)
    if len(data) > TOKEN_FILE_MAX:
        raise ApiSetupError(f"{path}: the token file is over {TOKEN_FILE_MAX // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiSetupError(f"{path}: the token file is not UTF-8 text "
                            f"(byte {exc.start})") from None
    return parse_tokens(text, path)


def _write_private(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``, mode 0600 whatever the umask left, synced."""
    os.fchmod(fd, 0o600)
    while data:
        data = data[os.write(fd, data):]
    os.fsync(fd)


def write_token_file(path: Path, tokens: Tokens) -> bool:
    """Write a new token file at ``path`` (mode 0600); False when one is
    there already (it is left as it is)."""
    data = _text(tokens).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    try:
        try:
            _write_private(fd, data)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces a file that is there
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: create it exclusively
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                              | getattr(os, "O_CLOEXEC", 0), 0o600)
            except FileExistsError:
                return False
            try:
                _write_private(out, data)
            finally:
                os.close(out)
        return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def load_or_create(path: Path) -> tuple[Tokens, bool]:
    """The tokens of ``path``, the file made first when there is none:
    (tokens, created).  :class:`ApiSetupError` names the file."""
    try:
        try:
            return read_token_file(path), False
        except FileNotFoundError:
            pass
        tokens = new_tokens()
        if write_token_file(path, tokens):
            return Tokens(tokens.by_role, path), True
        return read_token_file(path), False  # another engine made it a moment ago
    except ApiSetupError:
        raise
    except OSError as exc:
        raise ApiSetupError(f"{path}: cannot read or create the token file: "
                            f"{exc.strerror or exc}") from None


# ------------------------------------------------------------------- TLS


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The control listener's TLS (TLS 1.2 or later); with ``client_ca`` a
    client certificate signed by it is required."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ApiSetupError(f"{tls.cert}, {tls.key}: api.tls: cannot load the certificate "
                            f"and its key: {getattr(exc, 'strerror', None) or exc}") from None
    if tls.client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=tls.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ApiSetupError(f"{tls.client_ca}: api.tls.client_ca: cannot load the CA "
                                f"certificates: {getattr(exc, 'strerror', None) or exc}") \
                from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def cert_names(peercert: Mapping[str, Any]) -> list[str]:
    """A verified certificate's names: its subject's commonName, then its
    DNS, email and URI subjectAltNames."""
    names = [value for rdn in peercert.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    names += [value for kind, value in peercert.get("subjectAltName", ())
              if kind in ("DNS", "email", "URI")]
    return names


def cert_role(peercert: Mapping[str, Any] | None, roles: Mapping[str, Role]) -> Role | None:
    """The role a verified client certificate carries (``roles``: name -> role,
    ``"*"`` any other), or None."""
    if not peercert:
        return None
    found = [roles[n] for n in cert_names(peercert) if n in roles]
    if found:
        return max(found)
    return roles.get("*")


# ------------------------------------------------------ browser cookies


@dataclass(frozen=True, slots=True)
class CookieSpec:
    """What one browser cookie is: its name, the path it lives on (and the
    only paths it opens), the role whose token gives it and that it gives,
    how long it lives, and which POSTs it may carry (none: GETs only)."""

    #: the cookie's name
    name: str
    #: its ``Path``; it opens this path and the paths under it, nothing else
    path: str
    #: the role whose token (and only that one) gets it, and the role it gives
    role: Role
    #: its life in seconds (``Max-Age``, and the expiry it carries)
    max_age_s: int
    #: the label its key is derived with (one key per cookie)
    label: bytes
    #: what it opens, for the sign-in page and the refusals ("the wallboard")
    title: str
    #: where the sign-in is explained
    doc: str
    #: the POSTs it may carry (a full match of the path); None: none.  A POST
    #: with the cookie must also come from this server's own page (Origin or
    #: Referer of this host): :meth:`Guard.role`
    posts: re.Pattern[str] | None = None
    #: a line more for the sign-in page
    note: str = ""
    #: the path its sign-in form posts the token to (:meth:`Guard.sign_in`):
    #: the token never in a URL, ``GET <path>?token=`` refused.  None: ``GET
    #: <path>?token=`` gives it (the wallboard's read token)
    form: str | None = None

    def covers(self, method: str, path: str) -> bool:
        """Whether a request of ``method`` on ``path`` may be let in with the
        cookie: a GET or HEAD of its path or under it, a POST of ``posts``."""
        if not (path == self.path or path.startswith(self.path + "/")):
            return False
        if method in ("GET", "HEAD"):
            return True
        return method == "POST" and self.posts is not None \
            and self.posts.fullmatch(path) is not None


#: the wallboard's cookie (docs/wallboard.md): read role, GETs of /wallboard
WALLBOARD = CookieSpec(
    WALLBOARD_COOKIE, WALLBOARD_PATH, Role.READ, WALLBOARD_COOKIE_MAX_AGE_S,
    b"acd wallboard cookie v1", "the wallboard", "docs/wallboard.md")
#: the quality review pages' cookie (docs/quality.md): admin role, GETs of
#: /qa, the score's POST and the sign-out; 12 hours, a reviewer's working
#: day; given by the sign-in form only (the admin token never in a URL)
QA = CookieSpec(
    QA_COOKIE, QA_PATH, Role.ADMIN, QA_COOKIE_MAX_AGE_S, b"acd qa cookie v1",
    "the quality review pages", "docs/quality.md",
    re.compile(r"/qa/[^/]+/score|" + re.escape(QA_SIGN_OUT_PATH)),
    note="Sign in on a machine you alone use; sign out (the button on every page) "
         "when you are done.", form=QA_SIGN_IN_PATH)


#: the sign-in pages' look: that of the pages they lead to (the wallboard's
#: dark theme, acd/api/static/wallboard.css; the quality pages' light one,
#: acd/api/static/qa.css), by the cookie's path
SIGN_IN_STYLES = {
    WALLBOARD_PATH: (
        'body{font:20px "Noto Sans CJK SC","Noto Sans",sans-serif;background:#0b0f14;'
        "color:#f4f7fa;padding:2em;max-width:50em}code{color:#9fb0c2}"
        ".problem{color:#ff8a80}"),
    QA_PATH: (
        'body{font-family:system-ui,"Noto Sans CJK SC","Noto Sans",sans-serif;margin:1.5em;'
        "color:#222;background:#fff;max-width:50em}"
        ".problem{color:#b00020;border:1px solid #b00020;padding:.3em 1em}"
        "input,button{font:inherit}"),
}


def sign_in_page(spec: CookieSpec, next_path: str = "", problem: str = "") -> str:
    """What a browser without the cookie sees at the cookie's paths (a 401):
    with a sign-in form (``spec.form``), the form (``next_path``: where it
    goes back to; ``problem``: why the last try failed), else how to open
    ``<path>?token=``."""
    title = html.escape(spec.title[:1].upper() + spec.title[1:])
    role = spec.role.label
    note = f"<p>{html.escape(spec.note)}</p>" if spec.note else ""
    style = SIGN_IN_STYLES.get(spec.path, SIGN_IN_STYLES[WALLBOARD_PATH])
    head = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
            f'</title><link rel="icon" href="data:,"><style>{style}</style></head><body>'
            f'<h1>{title}</h1>')
    if spec.form is not None:
        error = (f'<p role="alert" class="problem">{html.escape(problem)}</p>'
                 if problem else "")
        return (
            f"{head}{error}<p>Sign in with the {role} token: the <code>{role}:</code> line "
            "of the token file (<code>acd-api.tokens</code> beside acd.yaml). Type or paste "
            "it here, never in the address bar: a URL stays in the browser's history and in "
            f"logs. See {html.escape(spec.doc)}.</p>"
            f'<form method="post" action="{html.escape(spec.form)}">'
            f'<label>{role} token <input type="password" name="token" required autofocus '
            'autocomplete="current-password" maxlength="256" size="44"></label> '
            f'<input type="hidden" name="next" value="{html.escape(next_path or spec.path)}">'
            f'<button type="submit">sign in</button></form>{note}</body></html>\n')
    return (
        f"{head}<p>This browser has no cookie for "
        f"{html.escape(spec.title)} (or it expired). Open "
        f"<code>{html.escape(spec.path)}?token=&lt;the {role} token&gt;</code> once: the "
        f"{role} token is the <code>{role}:</code> line of the token file "
        f"(<code>acd-api.tokens</code> beside acd.yaml). See {html.escape(spec.doc)}.</p>"
        f"{note}</body></html>\n")


class BrowserCookie:
    """A browser's cookie for a few pages (:class:`CookieSpec`):
    ``<expiry>.<HMAC-SHA256 of it>``, keyed by a key derived from the
    ``spec.role`` token (a new token file voids every cookie).

    It is given once for that token (``GET <path>?token=...``, or the
    sign-in form's POST when ``spec.form`` is set), holds no token, is
    HttpOnly, SameSite=Strict, ``Path=<path>`` (Secure over TLS), and lets
    a request in with ``spec.role`` only, and only on its paths
    (:meth:`CookieSpec.covers`): never another endpoint.
    """

    def __init__(self, tokens: Tokens, spec: CookieSpec,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        token = tokens.by_role.get(spec.role)
        self._key = None if token is None else hmac.digest(token.encode(), spec.label,
                                                           "sha256")
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """False without the role's token (then no cookie is ever given)."""
        return self._key is not None

    def _sign(self, expires: str) -> str:
        assert self._key is not None
        return hmac.new(self._key, expires.encode(), "sha256").hexdigest()

    def make(self) -> str:
        expires = str(int(self._clock()) + self.spec.max_age_s)
        return f"{expires}.{self._sign(expires)}"

    def valid(self, value: str) -> bool:
        """A cookie this server made, not expired (compared in constant time)."""
        expires, _, sig = value.partition(".")
        if self._key is None or not expires.isdigit() or len(expires) > 12:
            return False
        if not hmac.compare_digest(sig.encode("utf-8", "replace"),
                                   self._sign(expires).encode()):
            return False
        return int(expires) > self._clock()


def same_origin(request: web.Request) -> bool:
    """Whether a request says it comes from this server's own page: its
    ``Origin``, else its ``Referer``, names this host (and port).  Neither,
    or ``Origin: null``: False."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return False
    parts = urllib.parse.urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc == request.host


def safe_next(value: str | None, spec: CookieSpec) -> str:
    """Where a sign-in sends the browser: ``value`` when it is a path of this
    server on the cookie's path (``/qa``, ``/qa/...``, a query kept), else
    the cookie's path: never another site (no scheme, no host, no ``//``,
    no backslash, no ``..``, printable ASCII only, at most :data:`NEXT_MAX`
    characters), never the sign-in form itself."""
    if not value or len(value) > NEXT_MAX or not value.isascii() \
            or any(not ("!" <= ch <= "~") for ch in value) or "\\" in value:
        return spec.path
    parts = urllib.parse.urlsplit(value)
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return spec.path
    if not (path == spec.path or path.startswith(spec.path + "/")) or path == spec.form:
        return spec.path
    if any(seg in (".", "..") for seg in urllib.parse.unquote(path).split("/")):
        return spec.path
    return urllib.parse.urlunsplit(("", "", path, parts.query, ""))


def next_of(request: web.Request, spec: CookieSpec) -> str:
    """The page a browser asked for, to go back to after signing in: a GET's
    own path and query (less any ``token``), a POST's page (its Referer,
    from this server), else the cookie's path; :func:`safe_next` always."""
    if request.method in ("GET", "HEAD"):
        query = [(k, v) for k, v in request.query.items() if k != "token"]
        return safe_next(str(request.rel_url.with_query(query)), spec)
    parts = urllib.parse.urlsplit(request.headers.get("Referer", ""))
    if parts.scheme in ("http", "https") and parts.netloc == request.host:
        return safe_next(urllib.parse.urlunsplit(("", "", parts.path, parts.query, "")), spec)
    return spec.path


def is_browser(request: web.Request) -> bool:
    """A request that asks for HTML (a browser's page load or form)."""
    return "text/html" in request.headers.get("Accept", "")


# ------------------------------------------------------------ middleware


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def role_of(request: web.Request) -> Role:
    """The role a request was let in with (after :class:`Guard`)."""
    role = request.get(ROLE_KEY)
    return role if isinstance(role, Role) else Role.READ


class Guard:
    """The control app's authentication middleware: the request's role from
    its bearer token and client certificate, checked against the role its
    route needs (``app[NEEDS]``)."""

    def __init__(self, tokens: Tokens, tls: TlsConfig | None = None,
                 refusals: Limited | None = None) -> None:
        self.tokens = tokens
        self.cert_roles: Mapping[str, Role] = tls.client_roles if tls is not None else {}
        self.refusals = refusals or Limited(60.0)
        self.refused = 0
        #: the browsers' cookies: the wallboard's (read), the quality pages' (admin)
        self.wallboard = BrowserCookie(tokens, WALLBOARD)
        self.qa = BrowserCookie(tokens, QA)
        self.cookies = (self.wallboard, self.qa)

    def _refuse(self, request: web.Request, status: int, kind: str, why: str,
                invalid: bool = False) -> ApiError:
        """The answer to a refused request (``invalid``: a token was given but
        is no good), logged rate-limited per ``kind`` of refusal (no
        credentials, wrong token, role too low, ...): method, path, peer, why."""
        self.refused += 1
        path = printable(request.path, newlines=False)[:200]
        self.refusals.warning(log, f"{status}:{kind}",
                              "control API: %s %s from %s refused (%d: %s)",
                              request.method, path, request.remote or "?", status, why)
        if status == 401:
            error = ', error="invalid_token"' if invalid else ""
            return ApiError(401, f"unauthorized: {why}",
                            {"WWW-Authenticate": f'Bearer realm="acd"{error}'})
        if status == 403:
            return ApiError(403, f"forbidden: {why}")
        return ApiError(status, why)

    def role(self, request: web.Request) -> Role:
        """The request's role; :class:`ApiError` 401 without credentials or
        with a wrong token."""
        return self.credentials(request)[0]

    def credentials(self, request: web.Request) -> tuple[Role, BrowserCookie | None]:
        """The request's role, and the cookie it was let in with (None: a
        token or a client certificate); :class:`ApiError` 401 without
        credentials, with a wrong token or a bad cookie, 403 for a cookie's
        POST that does not come from this server's own page."""
        peercert = None
        if request.transport is not None:
            peercert = request.transport.get_extra_info("peercert")
        by_cert = cert_role(peercert, self.cert_roles)
        header = request.headers.get("Authorization")
        by_token: Role | None = None
        if header is not None:
            token = bearer(header)
            if token is None:
                raise self._refuse(request, 401, "malformed header", "malformed Authorization "
                                   "header (expected: Bearer <token>)", invalid=True)
            by_token = self.tokens.role_of(token)
            if by_token is None:
                raise self._refuse(request, 401, "wrong token", "wrong token", invalid=True)
        found = [r for r in (by_cert, by_token) if r is not None]
        for cookie in self.cookies if not found else ():
            spec = cookie.spec
            value = request.cookies.get(spec.name)
            if value is None or not spec.covers(request.method, request.path):
                continue
            if not cookie.valid(value):
                again = f"sign in again at {spec.path}" if spec.form is not None else \
                    f"open {spec.path}?token=<the {spec.role.label} token> again"
                raise self._refuse(request, 401, f"bad {spec.name} cookie", f"the cookie of "
                                   f"{spec.title} is expired or not this server's: {again}")
            if request.method not in ("GET", "HEAD") and not same_origin(request):
                raise self._refuse(request, 403, f"{spec.name} cookie cross-site", "a "
                                   f"{request.method} with the cookie of {spec.title} must come "
                                   "from this server's own page (its Origin or Referer "
                                   "names another site, or neither was sent)")
            return spec.role, cookie  # the cookie's role: never more
        if not found and peercert:
            raise self._refuse(request, 401, "bad client cert", "the client certificate "
                               "carries no role (api.tls.client_roles) and no token was given")
        if not found:
            raise self._refuse(request, 401, "no credentials", "no credentials (Authorization: "
                               "Bearer <token>, the token file's)")
        return max(found), None

    def cookie_login(self, request: web.Request, cookie: BrowserCookie) -> web.Response:
        """``GET <path>?token=<the cookie's role's token>``: answered 303 to
        the same URL without the token, with the cookie; a wrong token is
        401 and another role's token 403 (a higher one does not belong in a
        URL: browsers keep URLs in their history), both without a cookie."""
        spec = cookie.spec
        role = self.tokens.role_of(request.query["token"])
        if role is None:
            raise self._refuse(request, 401, "wrong token", "wrong token", invalid=True)
        if role is not spec.role or not cookie.enabled:
            why = "; a URL is kept in the browser's history" if role > spec.role else ""
            raise self._refuse(request, 403, f"{spec.name} token", f"{spec.title}: the "
                               f"{spec.role.label} token only (this is the {role.label} "
                               f"token{why})")
        query = [(k, v) for k, v in request.query.items() if k != "token"]
        resp = web.Response(status=303, headers={
            "Location": str(request.rel_url.with_query(query)),
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        resp.set_cookie(spec.name, cookie.make(), path=spec.path, max_age=spec.max_age_s,
                        httponly=True, samesite="Strict", secure=request.secure)
        return resp

    @staticmethod
    def _page(spec: CookieSpec, status: int, next_path: str = "", problem: str = "",
              headers: Mapping[str, str] | None = None) -> web.Response:
        """A sign-in page (:func:`sign_in_page`) answered with ``status``."""
        return web.Response(status=status, text=sign_in_page(spec, next_path, problem),
                            content_type="text/html", charset="utf-8",
                            headers={**(headers or {}), **SIGN_IN_HEADERS})

    def _sign_in(self, request: web.Request, exc: ApiError) -> web.Response | None:
        """A 401 for a browser (``Accept: text/html``) at a cookie's paths:
        a short page saying how to sign in, the quality pages' with its form
        (None: answer as the API does)."""
        if exc.status != 401 or not is_browser(request):
            return None
        for browser in self.cookies:
            spec = browser.spec
            if request.path == spec.path or request.path.startswith(spec.path + "/"):
                return self._page(spec, 401, next_of(request, spec), headers=exc.headers)
        return None

    def token_in_url(self, request: web.Request, cookie: BrowserCookie) -> web.Response:
        """``GET <path>?token=...`` at the paths of a cookie given by a form
        only (the quality pages'): refused, 400, whatever the token (it is
        neither looked at nor logged: the log line has the path only); a
        browser gets the sign-in form with a word on why."""
        spec = cookie.spec
        why = (f"{spec.title}: a token does not belong in a URL (browsers keep URLs in their "
               f"history, proxies and servers in their logs): sign in with the form of "
               f"{spec.path}")
        exc = self._refuse(request, 400, f"{spec.name} token in URL", why)
        if not is_browser(request):
            raise exc
        return self._page(spec, 400, next_of(request, spec),
                          "A token does not go in the address: type it in this form. The "
                          "address you opened stays in this browser's history: delete that "
                          "entry.")

    async def _form(self, request: web.Request) -> dict[str, str]:
        """The fields of a sign-in form's body (urlencoded, at most
        :data:`SIGN_IN_MAX_BYTES`, read within :data:`SIGN_IN_READ_S`);
        the first of a field given twice.  {} without a body;
        :class:`ApiError` 413, 415 or 400."""
        too_large = ApiError(413, f"the sign-in form: at most {SIGN_IN_MAX_BYTES} bytes")
        if request.content_length is not None and request.content_length > SIGN_IN_MAX_BYTES:
            raise too_large
        raw = b""
        try:
            async with asyncio.timeout(SIGN_IN_READ_S):
                while len(raw) <= SIGN_IN_MAX_BYTES:
                    chunk = await request.content.read(SIGN_IN_MAX_BYTES + 1 - len(raw))
                    if not chunk:
                        break
                    raw += chunk
        except TimeoutError:
            raise ApiError(408, "the sign-in form: its body took too long") from None
        if len(raw) > SIGN_IN_MAX_BYTES:
            raise too_large
        if not raw.strip():
            return {}
        if request.content_type != "application/x-www-form-urlencoded":
            raise ApiError(415, "the sign-in form: an application/x-www-form-urlencoded "
                                "body (token=...&next=...)")
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                           max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "the sign-in form cannot be read (UTF-8 text, at most "
                                "8 fields)") from None
        fields: dict[str, str] = {}
        for key, value in pairs:
            fields.setdefault(key, value)
        return fields

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        """``POST /qa/sign-in``, the sign-in form (:func:`sign_in_page`): the
        route open without credentials (:data:`OPEN_ROUTES`), for it checks
        the token of its body.  No token: 401; a POST not from this server's
        own page (Origin, else Referer): 403, before the token is compared;
        a wrong token: 401; another role's: 403; each the form again (HTML),
        logged rate-limited without the token, no cookie.  The admin token:
        303 to ``next`` (:func:`safe_next`: a ``/qa`` path of this server)
        with the cookie."""
        cookie = self.qa
        spec = cookie.spec
        fields = await self._form(request)
        token = fields.get("token", "").strip()
        where = safe_next(fields.get("next"), spec)
        if not token:
            exc = self._refuse(request, 401, "sign-in without token", "no token")
            return self._page(spec, 401, where, f"Type the {spec.role.label} token.",
                              exc.headers)
        if not same_origin(request):
            self._refuse(request, 403, "sign-in cross-site", "the sign-in form must be sent "
                         "from this server's own page (its Origin or Referer names another "
                         "site, or neither was sent)")
            return self._page(spec, 403, where, "The sign-in form must be sent from this "
                              "server's own page: open it again and sign in there.")
        role = self.tokens.role_of(token)
        if role is None:
            exc = self._refuse(request, 401, "wrong token", "wrong token", invalid=True)
            return self._page(spec, 401, where, "Wrong token: check the "
                              f"{spec.role.label}: line of the token file.", exc.headers)
        if role is not spec.role or not cookie.enabled:
            self._refuse(request, 403, f"{spec.name} token", f"{spec.title}: the "
                         f"{spec.role.label} token only (this is the {role.label} token)")
            return self._page(spec, 403, where, f"That is the {role.label} token: "
                              f"{spec.title} need the {spec.role.label} token.")
        log.info("control API: %s: signed in from %s", spec.title, request.remote or "?")
        resp = web.Response(status=303, headers={"Location": where, **SIGN_IN_HEADERS})
        resp.set_cookie(spec.name, cookie.make(), path=spec.path, max_age=spec.max_age_s,
                        httponly=True, samesite="Strict", secure=request.secure)
        return resp

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        """``POST /qa/sign-out`` (the admin role: the cookie, from this
        server's own page, or a token): 303 to ``/qa`` with the cookie
        cleared in this browser.  The cookie is not revoked: a copy of it
        stays good until it expires (a new token file voids them all)."""
        spec = self.qa.spec
        resp = web.Response(status=303, headers={"Location": spec.path, **SIGN_IN_HEADERS})
        resp.del_cookie(spec.name, path=spec.path, secure=request.secure, httponly=True,
                        samesite="Strict")
        return resp

    @staticmethod
    def is_open(request: web.Request) -> bool:
        """Whether the request is for a route let in without credentials:
        the application registered it and it is one of :data:`OPEN_ROUTES`
        (``POST /qa/sign-in`` only), method and path exactly."""
        route = request.match_info.route
        resource = route.resource
        return resource is not None and route.method == request.method \
            and (request.method, resource.canonical) in OPEN_ROUTES \
            and request.path == resource.canonical

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.is_open(request):  # the sign-in form: it checks its token itself
            return await handler(request)
        if request.method in ("GET", "HEAD") and "token" in request.query:
            for browser in self.cookies:
                spec = browser.spec
                if spec.form is not None and spec.covers(request.method, request.path):
                    return self.token_in_url(request, browser)
                if spec.form is None and request.method == "GET" \
                        and request.path == spec.path:
                    return self.cookie_login(request, browser)
        try:
            role, cookie = self.credentials(request)
        except ApiError as exc:
            page = self._sign_in(request, exc)
            if page is not None:
                return page
            raise
        route = request.match_info.route
        resource = route.resource
        if cookie is not None and resource is not None \
                and not cookie.spec.covers(request.method, resource.canonical):
            # the path is the cookie's, the route is not (it cannot be: a guard)
            raise self._refuse(request, 401, f"{cookie.spec.name} cookie elsewhere",
                               f"the cookie of {cookie.spec.title} opens nothing else")
        need = request.app[NEEDS].get(route)
        if need is not None and role < need:
            where = resource.canonical if resource is not None else "?"
            raise self._refuse(request, 403, "role too low", f"{request.method} {where} needs "
                               f"the {need.label} role (these credentials have {role.label})")
        request[ROLE_KEY] = role
        return await handler(request)
