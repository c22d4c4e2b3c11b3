"""The control API's settings (the ``api:`` block of acd.yaml) and its roles.

Two listeners:

* the **control listener** (``api.host``/``api.port``, off without a port):
  every route needs credentials, a bearer token from the token file or a
  client certificate (mutual TLS); the role they carry decides what is
  allowed (:class:`Role`);
* the **public listener** (``api.public.host``/``.port``, off without a
  port): the SMS link (``GET /s/<token>``) and click tracking (``POST
  /sms/click/<token>``) and nothing else, without credentials.

A control listener on an address other than the loopback needs TLS, or
``allow_plain_http: true`` (then the engine warns at start).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: the token file's name: beside acd.yaml (``api.token_file`` changes it)
DEFAULT_TOKEN_FILE = "acd-api.tokens"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088


class Role(enum.IntEnum):
    """What a credential may do; each role may do what the lower ones may."""

    #: wallboards: health, agents, queues (caller numbers masked), statistics, the flow
    READ = 1
    #: agent desktops: log in and out, ready, pause; caller numbers in full
    AGENT = 2
    #: configuration: profile changes, flow reload, SMS opt-outs, app logins, the outbox
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, name: str) -> Role | None:
        """The role called ``name`` (``read``, ``agent``, ``admin``), or None."""
        return next((r for r in cls if r.label == name), None)


ROLE_NAMES = tuple(r.label for r in Role)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """HTTPS for the control listener; with ``client_ca``, mutual TLS."""

    cert: Path
    key: Path
    #: CA certificates that sign the clients' certificates: a client without
    #: one signed by them is refused in the TLS handshake
    client_ca: Path | None = None
    #: a verified client certificate's name (its subject's commonName or a
    #: DNS, email or URI subjectAltName) -> the role it carries; ``"*"``: any
    #: other verified certificate.  A certificate with no role here needs a
    #: bearer token as well.
    client_roles: Mapping[str, Role] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str = DEFAULT_HOST
    #: the control listener's port; None: off (0: any free port)
    port: int | None = None
    #: the bearer tokens, one per role; created (mode 0600) when missing
    token_file: Path = Path(DEFAULT_TOKEN_FILE)
    tls: TlsConfig | None = None
    #: a non-loopback ``host`` without ``tls`` is refused unless this is set
    allow_plain_http: bool = False
    #: the SMS link's listener (GET /s/<token>, POST /sms/click/<token>); None: off
    public_host: str = DEFAULT_HOST
    public_port: int | None = None

    @property
    def plain_on_network(self) -> bool:
        """The control listener would take plain HTTP from the network."""
        return self.port is not None and self.tls is None and not is_loopback(self.host)

    def problem(self) -> str | None:
        """Why these settings may not be used, or None."""
        if self.plain_on_network and not self.allow_plain_http:
            return (f"api.host: {self.host} is not a loopback address, so the control API "
                    "would take tokens in plain HTTP from the network; give api.tls "
                    "(cert, key) or set api.allow_plain_http: true (e.g. behind a TLS proxy)")
        return None


def is_loopback(host: str) -> bool:
    """``host`` names only this machine (127.0.0.0/8, ::1, localhost).  Any
    other name counts as reachable from the network: it is not resolved."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
