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
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import ssl
import stat
from collections.abc import Mapping
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
        return ApiError(403, f"forbidden: {why}")

    def role(self, request: web.Request) -> Role:
        """The request's role; :class:`ApiError` 401 without credentials or
        with a wrong token."""
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
        if not found and peercert:
            raise self._refuse(request, 401, "bad client cert", "the client certificate "
                               "carries no role (api.tls.client_roles) and no token was given")
        if not found:
            raise self._refuse(request, 401, "no credentials", "no credentials (Authorization: "
                               "Bearer <token>, the token file's)")
        return max(found)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        role = self.role(request)
        need = request.app[NEEDS].get(request.match_info.route)
        if need is not None and role < need:
            resource = request.match_info.route.resource
            where = resource.canonical if resource is not None else "?"
            raise self._refuse(request, 403, "role too low", f"{request.method} {where} needs "
                               f"the {need.label} role (these credentials have {role.label})")
        request[ROLE_KEY] = role
        return await handler(request)
