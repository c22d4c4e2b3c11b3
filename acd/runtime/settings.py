"""Engine configuration file (YAML): loading with errors that name file,
line, column and key (``acd.yaml:12:5: ami.port: must be ...``).

Example (see ``acd.example.yaml``)::

    server: pbx1
    ami: {host: 127.0.0.1, port: 5038, username: acd, secret: change-me}
    agi: {host: 127.0.0.1, port: 4573}
    database: sqlite+aiosqlite:///acd.db
    flow: ivr_flows/hotline.yaml
    wrap_up_s: 5
    queues:
      - {name: billing, ring_timeout_s: 20}
    agents:
      - {id: a1001, extension: "1001", queues: [billing]}
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acd.adapters.ami import AmiConfig
from acd.adapters.fastagi import DEFAULT_MAX_CONNECTIONS, LOOPBACK
from acd.adapters.storage import RecordsConfig
from acd.api.auth import ApiSetupError, server_context
from acd.api.config import DEFAULT_TOKEN_FILE, ROLE_NAMES, ApiConfig, Role, TlsConfig
from acd.core.model import CoreConfig, RecordingRule
from acd.core.numbers import DEFAULT_COUNTRY, CountryError, parse_country
from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile
from acd.ivr.hours import HoursError, zone
from acd.ivr.load import load_flow
from acd.ivr.nodes import Flow, Sms
from acd.ivr.parse import FlowError
from acd.ivr.saying import COMPOSED_LANGUAGES, GRAMMAR_LANGUAGES
from acd.loaders.routing import PolicyError, load_policy
from acd.loaders.textfile import clip
from acd.loaders.yamlpos import Places, Reader, YamlError, read_text
from acd.qa.forms import EXAMPLE_FORM, FORM_FILE, FormError, load_form
from acd.runtime.event_bus import EventsConfig
from acd.runtime.queue_log_wiring import QueueLogConfig
from acd.runtime.recordings import FORMATS, RecordingsConfig
from acd.runtime.sms_sender import SenderConfig
from acd.sms.policy import SmsPolicy, SmsPolicyError, load_sms_policy


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Another Asterisk server the engine drives (``servers:`` in acd.yaml)."""

    name: str
    ami: AmiConfig


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """``statistics:`` in acd.yaml: how the live interval statistics count
    (the defaults of ``acd report calls`` too; docs/reports.md)."""

    #: abandons with a shorter wait are counted apart, out of SL and abandon rate (0: off)
    short_abandon_s: float = 0.0
    #: the time zone whose local midnight the days and intervals align on
    #: (None: this machine's, :func:`local_zone`)
    tz: str | None = None
    #: the intervals' length, seconds (divides a day: 900, 1800, 3600 ...)
    interval_s: float = 900.0
    #: days of intervals the engine keeps (today and the days before it);
    #: older ones are pruned once a day (the report reads the database)
    keep_days: int = 8


@dataclass(frozen=True, slots=True)
class QaConfig:
    """``qa:`` in acd.yaml: the quality review's scoring form (docs/quality.md),
    checked when acd.yaml is loaded, and the zone its pages show times in."""

    #: ``qa.form`` (relative to acd.yaml's folder), else qa_form.yaml beside
    #: acd.yaml if there is one, else the example form shipped in the package
    form: Path = EXAMPLE_FORM
    #: the zone of the times shown (``statistics.tz``, else this machine's)
    zone: dt.tzinfo = field(default_factory=lambda: local_zone())


@dataclass(frozen=True, slots=True)
class EngineConfig:
    core: CoreConfig
    flow: Flow
    ami: AmiConfig = field(default_factory=AmiConfig)
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    #: who may connect to FastAGI (``agi.allow``: addresses, networks, host
    #: names); None: this host and every server's AMI host (:attr:`agi_peers`)
    agi_allow: tuple[str, ...] | None = None
    #: FastAGI connections open at once, at most (``agi.max_connections``)
    agi_max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: how long a FastAGI connection may take to send its request header
    agi_header_timeout_s: float = 5.0
    database_url: str = "sqlite+aiosqlite:///acd.db"
    moh_class: str = "default"
    server: str = "pbx1"
    #: log every agent in (ready) at start; otherwise agents log in through
    #: the control API (`acd agents live login`)
    login_agents: bool = True
    #: control API (HTTP) for the CLI: `acd agents live ...`, `acd queue show`, and
    #: the SMS link's public listener (``api:`` of acd.yaml; docs/operations.md)
    api: ApiConfig = field(default_factory=ApiConfig)
    connect_context: str = "acd-connect"
    #: reload the flow when its file changes (else: `acd flow reload`)
    flow_watch: bool = False
    #: queues the flow may use (checked on load and reload); None = any
    known_queues: frozenset[str] | None = None
    #: the Asterisk sounds folder, if this machine has it (or a mounted copy):
    #: ``acd serve`` says at start which prompts are missing there (one
    #: warning, acd.prompts.startup); a flow reload whose prompts are missing
    #: there is warned about, not refused
    sounds: str | None = None
    #: the prompt pack's texts (``prompts:``; default prompts.yaml beside the
    #: flow), for ``acd prompts build --config`` (docs/prompts.md)
    prompts: str | None = None
    #: ``say_composed``: languages whose numbers, money, dates and times the
    #: engine says from the pack's own prompts (acd/num/..., acd.ivr.saying)
    #: instead of Asterisk's SAY commands (which know no Cantonese or Minnan)
    say_composed: tuple[str, ...] = COMPOSED_LANGUAGES
    #: the configuration file this was read from (its name in messages:
    #: "`sounds:` in /etc/acd/acd.yaml"); "acd.yaml" when built otherwise
    config_file: str = "acd.yaml"
    #: graceful stop: how long the accepted records may take to reach the database
    stop_flush_s: float = 10.0
    #: hot standby (docs/continuity.md): engines sharing a database take the
    #: leadership of this name; only the leader drives Asterisk
    leader_name: str = "acd"
    #: how often a standby tries to take the leadership
    leader_poll_s: float = 1.0
    #: more Asterisk servers besides ``server``/``ami`` (docs/continuity.md)
    servers: tuple[ServerConfig, ...] = ()
    #: (from server, to server) -> the context on ``from`` whose Dial reaches
    #: an agent registered on ``to`` (a trunk between them)
    paths: dict[tuple[str, str], str] = field(default_factory=dict)
    #: agent id -> the server their phone is on (else: found by device state)
    agent_servers: dict[str, str] = field(default_factory=dict)

    @property
    def api_host(self) -> str:
        return self.api.host

    @property
    def api_port(self) -> int | None:
        """The control API's port; None: off."""
        return self.api.port

    @property
    def server_names(self) -> tuple[str, ...]:
        """Every Asterisk server the engine drives, the first one first."""
        return (self.server, *(s.name for s in self.servers))

    @property
    def agi_peers(self) -> tuple[str, ...]:
        """Who may connect to FastAGI: ``agi.allow``, or else this host and
        the AMI host of every Asterisk server."""
        if self.agi_allow is not None:
            return self.agi_allow
        return tuple(dict.fromkeys((*LOOPBACK, self.ami.host,
                                    *(s.ami.host for s in self.servers))))
    transfer_context: str = "acd-transfer"
    #: SMS diversion after hangup (None: off); see docs/sms.md
    sms: SmsConfig | None = None
    #: the country calling code for numbers written in a national form
    #: (``13800138000`` is ``+8613800138000``); see acd.core.numbers
    country_code: str = DEFAULT_COUNTRY
    #: the event bus: calls, agents and queues over MQTT (None: off); see docs/events.md
    events: EventsConfig | None = None
    #: ``logging: show_caller_data``: callers' numbers and names (and SMS
    #: texts) in the log as they are; off: masked (138****5678); see acd.logs
    show_caller_data: bool = False
    #: ``records:``: the record writer's memory bound and local spool (see
    #: docs/operations.md, "Call records")
    records: RecordsConfig = field(default_factory=RecordsConfig)
    #: ``queue_log:``: Asterisk-format queue_log lines to a file and/or the
    #: realtime ``queue_log`` table (None: off; docs/reports.md#queue_log)
    queue_log: QueueLogConfig | None = None
    #: ``recordings:``: which answered calls are recorded, where, and for how
    #: long (None: none; docs/recordings.md)
    recordings: RecordingsConfig | None = None
    #: ``statistics:``: short abandons and the intervals' time zone (docs/reports.md)
    statistics: StatsConfig = field(default_factory=StatsConfig)
    #: ``qa:``: the quality review's scoring form (docs/quality.md)
    qa: QaConfig = field(default_factory=QaConfig)


@dataclass(frozen=True, slots=True)
class SmsConfig:
    policy: SmsPolicy
    transport: str = "log"  # log | mqtt | smpp
    mqtt: Any = None  # acd.adapters.sms_mqtt.MqttConfig
    smpp: Any = None  # acd.adapters.sms_smpp.SmppConfig
    sender: SenderConfig = field(default_factory=SenderConfig)



class ConfigError(Exception):
    """acd.yaml is wrong: ``file:line:column: key: problem`` (or a problem in a
    file it names, with that file's position)."""


class _Cfg:
    def __init__(self, file: str, places: Places | None = None) -> None:
        self.file = file
        self.places = places

    def err(self, where: str, msg: str, *, at: str | None = None,
            key: bool = False) -> ConfigError:
        """The error ``where: msg``, placed at the value of ``at`` (default:
        ``where``) or at its key (``key``); a path the file does not have is
        placed at its nearest enclosing one."""
        text = clip(f"{where}: {msg}")  # a value quoted from the file may be megabytes long
        if self.places is None:  # parsed from data, not from a file
            return ConfigError(f"{self.file}: {text}")
        line, column = self.places.find(where if at is None else at, key=key)
        return ConfigError(f"{self.file}:{line}:{column}: {text}")

    def mapping(self, v: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.err(where, "must be a mapping")
        return v

    def text(self, v: Any, where: str) -> str:
        if isinstance(v, bool) or not isinstance(v, str | int) or str(v) == "":
            raise self.err(where, "must be a non-empty text")
        return str(v)

    def number(self, v: Any, where: str, lo: float, hi: float) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise self.err(where, f"must be a number from {lo:g} to {hi:g}")
        return float(v)

    def port(self, v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
            raise self.err(where, "must be a TCP port number (0-65535)")
        return v

    def known(self, d: dict[str, Any], where: str, keys: set[str]) -> None:
        for k in d:
            if k not in keys:
                raise self.err(f"{where}.{k}" if where else str(k),
                               f"unknown key (known: {', '.join(sorted(keys))})", key=True)


def _ami(c: _Cfg, raw: Any, where: str) -> AmiConfig:
    ami_d = c.mapping(raw, where)
    c.known(ami_d, where, {"host", "port", "username", "secret", "action_timeout_s",
                           "ping_interval_s", "ping_timeout_s"})
    return AmiConfig(
        host=c.text(ami_d.get("host", "127.0.0.1"), f"{where}.host"),
        port=c.port(ami_d.get("port", 5038), f"{where}.port"),
        username=c.text(ami_d.get("username", "acd"), f"{where}.username"),
        secret=str(ami_d.get("secret", "")),
        action_timeout=c.number(ami_d.get("action_timeout_s", 5), f"{where}.action_timeout_s",
                                0.1, 120),
        ping_interval=c.number(ami_d.get("ping_interval_s", 5), f"{where}.ping_interval_s",
                               0.1, 600),
        ping_timeout=c.number(ami_d.get("ping_timeout_s", 3), f"{where}.ping_timeout_s",
                              0.1, 120),
    )


def _agent(c: _Cfg, ad: dict[str, Any], where: str, qnames: set[str],
           skills_known: set[str]) -> AgentProfile:
    c.known(ad, where, {"id", "extension", "name", "queues", "skills", "dialects", "languages",
                        "gender", "age_band", "groups", "vip_qualified"})
    aid = c.text(ad.get("id"), f"{where}.id")
    ext = c.text(ad.get("extension"), f"{where}.extension")
    if not ext.isdigit() or len(ext) < 2:
        raise c.err(f"{where}.extension", f"{ext!r} must be digits, at least 2 "
                    "(the dialplan dials PJSIP/<extension> from pattern _X.)")
    skills: dict[str, int] = {}
    if "queues" in ad:
        aq = ad["queues"]
        if not isinstance(aq, list) or not aq:
            raise c.err(f"{where}.queues", "must be a non-empty list of queue names")
        for j, q in enumerate(aq):
            if q not in qnames:
                raise c.err(f"{where}.queues", f"unknown queue {q!r} "
                            f"(queues: {', '.join(sorted(qnames))})", at=f"{where}.queues[{j}]")
            skills[str(q)] = 5
    for key in ("skills", "dialects"):
        if key in ad:
            m = c.mapping(ad[key], f"{where}.{key}")
            for k, v in m.items():
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10:
                    raise c.err(f"{where}.{key}.{k}", "must be a level from 1 to 10")
                if key == "skills":
                    skills[str(k)] = v
    if not skills:
        raise c.err(where, "needs queues or skills")
    for sk in skills:
        if sk not in skills_known:
            raise c.err(f"{where}.skills", f"no queue uses skill {sk!r} "
                        f"(skills: {', '.join(sorted(skills_known))})",
                        at=f"{where}.skills.{sk}", key=True)

    def names(key: str) -> frozenset[str]:
        v = ad.get(key, [])
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list):
            raise c.err(f"{where}.{key}", "must be a list of names")
        return frozenset(str(x) for x in v)

    try:
        return AgentProfile(
            agent_id=aid, extension=ext, name=str(ad.get("name", "")), skills=skills,
            dialects={str(k).lower(): int(v) for k, v in (ad.get("dialects") or {}).items()},
            languages=names("languages"), gender=str(ad.get("gender", "")).upper(),
            age_band=str(ad.get("age_band", "")), groups=names("groups"),
            vip_qualified=bool(ad.get("vip_qualified", False)),
        )
    except ValueError as exc:
        raise c.err(where, str(exc)) from None


def parse_config(data: Any, file: str = "<config>", base: Path | None = None, *,
                 places: Places | None = None) -> EngineConfig:
    """The configuration in ``data`` (acd.yaml as read by ``yaml.safe_load``);
    ``places`` (from :func:`load_config`) puts line and column in the errors."""
    c = _Cfg(file, places)
    top = c.mapping(data, "top level")
    c.known(top, "", {"server", "ami", "agi", "database", "flow", "moh_class", "wrap_up_s",
                      "rona_pause_s", "queues", "agents", "routing", "api_port", "api_host", "api",
                      "login_agents", "flow_watch", "sounds", "prompts", "transfer_context", "sms",
                      "country_code", "events", "stop_flush_s", "standby", "servers",
                      "paths", "logging", "records", "say_composed", "recordings",
                      "statistics", "qa",
                      "queue_log"})
    base = base or Path(".")
    ami = _ami(c, top.get("ami", {}), "ami")
    server = c.text(top.get("server", "pbx1"), "server")
    servers: list[ServerConfig] = []
    servers_raw = top.get("servers") or []
    if not isinstance(servers_raw, list):
        raise c.err("servers", "must be a list of servers ({name, ami})")
    for i, sd_raw in enumerate(servers_raw):
        where = f"servers[{i}]"
        sd = c.mapping(sd_raw, where)
        c.known(sd, where, {"name", "ami"})
        name = c.text(sd.get("name"), f"{where}.name")
        if name == server or any(s.name == name for s in servers):
            raise c.err(f"{where}.name", f"server {name!r} is named twice")
        if "ami" not in sd:
            raise c.err(where, f"server {name!r} needs its ami: {{host, port, username, secret}}")
        servers.append(ServerConfig(name, _ami(c, sd["ami"], f"{where}.ami")))
    names_all = {server, *(s.name for s in servers)}
    paths: dict[tuple[str, str], str] = {}
    paths_raw = top.get("paths") or []
    if not isinstance(paths_raw, list):
        raise c.err("paths", "must be a list of {from, to, context}")
    for i, pd_raw in enumerate(paths_raw):
        where = f"paths[{i}]"
        pd = c.mapping(pd_raw, where)
        c.known(pd, where, {"from", "to", "context"})
        ends = []
        for k in ("from", "to"):
            v = c.text(pd.get(k), f"{where}.{k}")
            if v not in names_all:
                raise c.err(f"{where}.{k}", f"unknown server {v!r} "
                            f"(servers: {', '.join(sorted(names_all))})")
            ends.append(v)
        if ends[0] == ends[1]:
            raise c.err(f"{where}.to", f"a path leads from a server to another, not to itself "
                        f"({ends[0]!r})")
        paths[(ends[0], ends[1])] = c.text(pd.get("context"), f"{where}.context")
    agi_d = c.mapping(top.get("agi", {}), "agi")
    c.known(agi_d, "agi", {"host", "port", "allow", "max_connections", "header_timeout_s"})
    if "routing" in top:
        if "queues" in top:
            raise c.err("queues", "queues are defined in the routing file "
                        f"({top['routing']}); remove them here")
        rpath = Path(c.text(top["routing"], "routing"))
        try:
            policy = load_policy(rpath if rpath.is_absolute() else base / rpath)
        except PolicyError as exc:  # placed in the routing file
            if exc.line == 0:  # the file as a whole: placed here
                raise c.err("routing", f"{exc.problem}: {exc.file}") from None
            raise ConfigError(str(exc)) from None
    else:
        queues_raw = top.get("queues")
        if not isinstance(queues_raw, list) or not queues_raw:
            raise c.err("queues", "must be a non-empty list of queues (or give a routing file)")
        rings: dict[str, float] = {}
        for i, q in enumerate(queues_raw):
            where = f"queues[{i}]"
            qd = c.mapping(q, where)
            c.known(qd, where, {"name", "ring_timeout_s"})
            name = c.text(qd.get("name"), f"{where}.name")
            if name in rings:
                raise c.err(f"{where}.name", f"queue {name!r} is defined twice")
            rings[name] = c.number(qd.get("ring_timeout_s", 20), f"{where}.ring_timeout_s", 1, 300)
        policy = simple_policy(rings)
    qnames = set(policy.queues)
    skills_known = {qp.require.skill for qp in policy.queues.values()}
    agents: list[AgentProfile] = []
    agents_raw = top.get("agents") or []
    if not isinstance(agents_raw, list):
        raise c.err("agents", "must be a list of agents")
    agent_servers: dict[str, str] = {}
    for i, a in enumerate(agents_raw):
        ad = c.mapping(a, f"agents[{i}]")
        home = ad.pop("server", None) if isinstance(ad, dict) else None
        profile = _agent(c, ad, f"agents[{i}]", qnames, skills_known)
        if any(x.agent_id == profile.agent_id for x in agents):
            raise c.err(f"agents[{i}].id", f"agent {profile.agent_id!r} is defined twice")
        if home is not None:
            home = c.text(home, f"agents[{i}].server")
            if home not in names_all:
                raise c.err(f"agents[{i}].server", f"unknown server {home!r} "
                            f"(servers: {', '.join(sorted(names_all))})")
            agent_servers[profile.agent_id] = home
        agents.append(profile)
    rona = top.get("rona_pause_s", 30)
    recordings = _recordings(c, top["recordings"], base, qnames, set(policy.classes)) \
        if top.get("recordings") is not None else None
    core = CoreConfig(
        policy=policy, agents=tuple(agents),
        wrap_up_s=c.number(top.get("wrap_up_s", 5), "wrap_up_s", 0, 3600),
        rona_pause_s=None if rona is None else c.number(rona, "rona_pause_s", 0, 86400),
        recording=recordings.rule if recordings is not None else None,
    )
    flow_path = Path(c.text(top.get("flow", "ivr_flows/hotline.yaml"), "flow"))
    if not flow_path.is_absolute():
        flow_path = base / flow_path
    # the IVR may name a queue, or a target that a routing rule maps (ivr_queue)
    targets = {v for r in policy.routes for t in r.when.tests if t.attr == "ivr_queue"
               for v in t.values}
    known = qnames | targets
    sounds: str | None = None
    if top.get("sounds") is not None:
        sp = Path(c.text(top["sounds"], "sounds"))
        sounds = str(sp if sp.is_absolute() else base / sp)
    prompts = str(flow_path.parent / "prompts.yaml")
    if top.get("prompts") is not None:
        pp = Path(c.text(top["prompts"], "prompts"))
        prompts = str(pp if pp.is_absolute() else base / pp)
    try:  # prompts missing in `sounds` are not refused here: serve warns at start
        flow = load_flow(flow_path, known_queues=known)
    except FlowError as exc:
        if exc.line == 0:  # missing, unreadable, too big: placed here
            raise c.err("flow", f"{exc.problem}: {exc.file}") from None
        raise
    try:
        country = parse_country(str(top.get("country_code", DEFAULT_COUNTRY)))
    except CountryError as exc:
        raise c.err("country_code", str(exc)) from None
    events = _events(c, top["events"], top.get("server", "pbx1")) \
        if top.get("events") is not None else None
    sms = _sms(c, top["sms"], base, flow.nodes, country) if top.get("sms") is not None \
        else None
    standby = c.mapping(top.get("standby") or {}, "standby")
    c.known(standby, "standby", {"name", "poll_s"})
    logging_d = c.mapping(top.get("logging") or {}, "logging")
    c.known(logging_d, "logging", {"show_caller_data"})
    show_caller_data = logging_d.get("show_caller_data", False)
    if not isinstance(show_caller_data, bool):
        raise c.err("logging.show_caller_data", "must be true or false")
    return EngineConfig(
        core=core, flow=flow, ami=ami, sms=sms, country_code=country, events=events,
        show_caller_data=show_caller_data,
        records=_records(c, top.get("records"), base),
        statistics=_statistics(c, top.get("statistics")),
        qa=_qa(c, top.get("qa"), base, top.get("statistics")),
        queue_log=_queue_log(c, top.get("queue_log"), base),
        recordings=recordings,
        stop_flush_s=c.number(top.get("stop_flush_s", 10), "stop_flush_s", 0.1, 600),
        leader_name=c.text(standby.get("name", "acd"), "standby.name"),
        leader_poll_s=c.number(standby.get("poll_s", 1), "standby.poll_s", 0.05, 60),
        agi_host=c.text(agi_d.get("host", "127.0.0.1"), "agi.host"),
        agi_port=c.port(agi_d.get("port", 4573), "agi.port"),
        agi_allow=_agi_allow(c, agi_d["allow"]) if agi_d.get("allow") is not None else None,
        agi_max_connections=_count(c, agi_d.get("max_connections", DEFAULT_MAX_CONNECTIONS),
                                   "agi.max_connections", 1, 1_000_000),
        agi_header_timeout_s=c.number(agi_d.get("header_timeout_s", 5),
                                      "agi.header_timeout_s", 0.1, 300),
        database_url=c.text(top.get("database", "sqlite+aiosqlite:///acd.db"), "database"),
        moh_class=c.text(top.get("moh_class", "default"), "moh_class"),
        server=server, servers=tuple(servers), paths=paths, agent_servers=agent_servers,
        login_agents=bool(top.get("login_agents", True)),
        api=_api(c, top, base),
        flow_watch=bool(top.get("flow_watch", False)),
        known_queues=frozenset(known),
        sounds=sounds,
        prompts=prompts,
        transfer_context=c.text(top.get("transfer_context", "acd-transfer"),
                                "transfer_context"),
        say_composed=_say_composed(c, top.get("say_composed", list(COMPOSED_LANGUAGES))),
        config_file=file if file != "<config>" else "acd.yaml",
    )


def _say_composed(c: _Cfg, raw: Any) -> tuple[str, ...]:
    """``say_composed: [zh, yue, nan]`` (``[]``: Asterisk says everything)."""
    if not isinstance(raw, list):
        raise c.err("say_composed", "must be a list of languages, e.g. [zh, yue, nan]")
    out: list[str] = []
    for i, v in enumerate(raw):
        lang = c.text(v, f"say_composed[{i}]")
        if lang not in GRAMMAR_LANGUAGES:
            raise c.err(f"say_composed[{i}]", f"no number grammar for language {lang!r} "
                        f"(known: {', '.join(sorted(GRAMMAR_LANGUAGES))}; other "
                        "languages are said by Asterisk)")
        out.append(lang)
    return tuple(dict.fromkeys(out))


def load_config(path: str | Path) -> EngineConfig:
    """Read and check acd.yaml; every problem is a :class:`ConfigError` naming
    the file, line and column (``acd.yaml:12:5: ami.port: must be ...``)."""
    p = Path(path)
    file = str(p)
    try:  # bounded: size, UTF-8, nesting, aliases (acd.loaders.yamlpos)
        text, _ = read_text(p, what="file")
    except YamlError as exc:
        raise ConfigError(f"{file}: cannot read the configuration: {exc.problem}"
                          if exc.line == 0 else str(exc)) from None
    reader = Reader(file)
    try:
        root = reader.compose(text)
        data, places = reader.plain(root)
    except YamlError as exc:
        if exc.problem != "the file is empty":
            raise ConfigError(str(exc)) from None
        # "top level: must be a mapping", as for any other non-mapping
        data, places = None, Places()
    return parse_config(data, file, p.parent, places=places)


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?")


def _agi_allow(c: _Cfg, raw: Any) -> tuple[str, ...]:
    """``agi.allow``: the peers that may connect to FastAGI."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise c.err("agi.allow", "must be a list of addresses, networks or host names "
                    "(e.g. [127.0.0.1, 10.0.0.0/8]; anyone: [0.0.0.0/0, '::/0'])")
    out: list[str] = []
    for i, v in enumerate(raw):
        where = f"agi.allow[{i}]"
        text = c.text(v, where).strip()
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            if not _HOST_NAME.fullmatch(text):
                raise c.err(where, f"{text!r} is not an address, a network (10.0.0.0/8) "
                            "or a host name") from None
        out.append(text)
    return tuple(out)


def _count(c: _Cfg, v: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise c.err(where, f"must be a whole number from {lo:,} to {hi:,}")
    return v


#: what a recordings folder (on the PBX) may hold: it goes into MixMonitor's
#: argument list, where a comma or a quote would split or end it
_FOLDER = re.compile(r"/[A-Za-z0-9._/+@-]*")


def _recordings(c: _Cfg, raw: Any, base: Path, qnames: set[str],
                classes: set[str]) -> RecordingsConfig:
    """``recordings:`` -- which answered calls are recorded (docs/recordings.md)."""
    d = c.mapping(raw, "recordings")
    c.known(d, "recordings", {"queues", "classes", "dir", "format", "retention_days",
                              "local_dir"})

    def names(key: str, known: set[str], what: str) -> tuple[frozenset[str], bool]:
        v = d.get(key, [])
        if v == "all":
            return frozenset(), True
        if v is None:
            return frozenset(), False
        if not isinstance(v, list):
            raise c.err(f"recordings.{key}", f"must be a list of {what} names, or all")
        out: set[str] = set()
        for i, x in enumerate(v):
            name = c.text(x, f"recordings.{key}[{i}]")
            if name not in known:
                raise c.err(f"recordings.{key}[{i}]", f"unknown {what} {name!r} "
                            f"({key}: {', '.join(sorted(known)) or 'none'})")
            out.add(name)
        return frozenset(out), False

    queues, all_queues = names("queues", qnames, "queue")
    classes_, all_classes = names("classes", classes, "class")
    folder = c.text(d.get("dir", "/var/spool/asterisk/monitor/acd"), "recordings.dir")
    if not _FOLDER.fullmatch(folder) or "/../" in folder + "/" or "/./" in folder + "/":
        raise c.err("recordings.dir", f"{folder!r} must be an absolute folder on the "
                    "Asterisk server, of letters, digits and . _ - + @ / only, without . "
                    "or .. parts (e.g. /var/spool/asterisk/monitor/acd)")
    fmt = c.text(d.get("format", "wav"), "recordings.format")
    if fmt not in FORMATS:
        raise c.err("recordings.format", f"unknown format {fmt!r} "
                    f"(formats: {', '.join(sorted(FORMATS))})")
    retention = d.get("retention_days", 90)
    local: str | None = None
    if d.get("local_dir") is not None:
        lp = Path(c.text(d["local_dir"], "recordings.local_dir"))
        local = str(lp if lp.is_absolute() else base / lp)
    return RecordingsConfig(
        rule=RecordingRule(folder, fmt, queues, classes_, all_queues or all_classes),
        retention_days=None if retention is None
        else c.number(retention, "recordings.retention_days", 1, 36500),
        local_dir=local)


def _writable_file(c: _Cfg, where: str, path: Path) -> None:
    """A file the engine appends to: writable if it exists, else its folder
    exists and is writable (checked here, once, rather than each line lost
    later; a later failure is still logged where it happens)."""
    if path.is_dir():
        raise c.err(where, f"{path} is a folder; name a file in it")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise c.err(where, f"{path} is not writable by this user")
        return
    folder = path.parent
    if not folder.is_dir():
        raise c.err(where, f"the folder {folder} does not exist (make it, or name a file "
                           "in a folder that does)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise c.err(where, f"cannot create {path.name} in {folder}: the folder is not "
                           "writable by this user")


def _queue_log(c: _Cfg, raw: Any, base: Path) -> QueueLogConfig | None:
    """``queue_log:`` -- Asterisk's queue_log to a file and/or the table (off
    unless one is set)."""
    if raw is None:
        return None
    d = c.mapping(raw, "queue_log")
    c.known(d, "queue_log", {"file", "table", "agent_format", "pause_all"})
    path: Path | None = None
    if d.get("file") is not None:
        p = Path(c.text(d["file"], "queue_log.file"))
        if "\0" in str(p):
            raise c.err("queue_log.file", "must be a file name (it holds a NUL)")
        path = p if p.is_absolute() else base / p
        _writable_file(c, "queue_log.file", path)
    for key in ("table", "pause_all"):
        if not isinstance(d.get(key, False), bool):
            raise c.err(f"queue_log.{key}", "must be true or false")
    fmt = c.text(d.get("agent_format", "Agent/{agent}"), "queue_log.agent_format")
    try:
        fmt.format(agent="a1")
    except (KeyError, IndexError, ValueError):
        raise c.err("queue_log.agent_format", f"{fmt!r}: may name only {{agent}} "
                    "(the agent id), e.g. Agent/{agent}") from None
    if "|" in fmt.format(agent="a1"):
        raise c.err("queue_log.agent_format", "must not hold '|' (the field separator)")
    if path is None and not d.get("table", False):
        return None
    return QueueLogConfig(file=path, table=bool(d.get("table", False)), agent_format=fmt,
                          pause_all=bool(d.get("pause_all", True)))


def local_zone() -> dt.tzinfo:
    """This machine's time zone: $TZ, else /etc/localtime's zone, else its
    current fixed offset.  The live statistics and ``acd report calls`` align
    days on it when ``statistics.tz`` is not set."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.path.realpath("/etc/localtime")
            if "zoneinfo/" in target:
                name = target.split("zoneinfo/", 1)[1]
        except OSError:
            name = ""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return dt.datetime.now().astimezone().tzinfo or dt.UTC


def statistics_zone(st: StatsConfig) -> dt.tzinfo:
    """The zone the statistics' days and intervals align on: ``statistics.tz``,
    else this machine's."""
    return zone(st.tz) if st.tz else local_zone()


def default_qa_form(folder: Path) -> Path:
    """The scoring form when ``qa.form`` is not set: ``qa_form.yaml`` in
    ``folder`` (acd.yaml's) if there is one, else the package's example."""
    beside = folder / FORM_FILE
    return beside if beside.is_file() else EXAMPLE_FORM


def _qa(c: _Cfg, raw: Any, base: Path, statistics: Any) -> QaConfig:
    """``qa: {form: PATH}`` -- the scoring form must exist and parse (its
    errors placed in it, ``qa_form.yaml:6:26: ...``)."""
    d = c.mapping(raw if raw is not None else {}, "qa")
    c.known(d, "qa", {"form"})
    if d.get("form") is not None:
        fp = Path(c.text(d["form"], "qa.form"))
        if "\0" in str(fp):
            raise c.err("qa.form", "must be a file name (it holds a NUL)")
        path = fp if fp.is_absolute() else base / fp
    else:
        path = default_qa_form(base)
    try:
        load_form(path)
    except FormError as exc:
        if exc.line == 0:  # missing, unreadable, too big: placed here
            named = "" if d.get("form") is not None else \
                f" (the default: {FORM_FILE} beside the configuration)"
            raise c.err("qa.form", f"the scoring form cannot be used{named}: "
                        f"{exc.problem}: {exc.file}") from None
        raise ConfigError(str(exc)) from None
    return QaConfig(form=path, zone=statistics_zone(_statistics(c, statistics)))


def _statistics(c: _Cfg, raw: Any) -> StatsConfig:
    """``statistics:`` -- short abandons and the intervals' time zone."""
    d = c.mapping(raw if raw is not None else {}, "statistics")
    c.known(d, "statistics", {"short_abandon_s", "tz", "interval_s", "keep_days"})
    interval = c.number(d.get("interval_s", 900), "statistics.interval_s", 60, 86400)
    if 86400 % interval:
        raise c.err("statistics.interval_s", f"{interval:g} does not divide a day "
                    "(e.g. 900, 1800, 3600)")
    tz = None
    if d.get("tz") is not None:
        tz = c.text(d["tz"], "statistics.tz")
        try:
            zone(tz)
        except HoursError as exc:
            raise c.err("statistics.tz", str(exc)) from None
    return StatsConfig(
        short_abandon_s=c.number(d.get("short_abandon_s", 0), "statistics.short_abandon_s",
                                 0, 3600), tz=tz, interval_s=interval,
        keep_days=_count(c, d.get("keep_days", 8), "statistics.keep_days", 1, 366))


def _records(c: _Cfg, raw: Any, base: Path) -> RecordsConfig:
    """``records:`` -- the record writer's spool and memory bound."""
    d = c.mapping(raw if raw is not None else {}, "records")
    c.known(d, "records", {"spool_dir", "spool_after_s", "max_memory_items", "write_timeout_s"})
    spool_dir: str | None = None
    if d.get("spool_dir") is not None:
        sp = Path(c.text(d["spool_dir"], "records.spool_dir"))
        if "\x00" in str(sp):
            raise c.err("records.spool_dir", "must be a directory name (it holds a NUL)")
        spool_dir = str(sp if sp.is_absolute() else base / sp)
    return RecordsConfig(
        spool_dir=spool_dir,
        spool_after_s=c.number(d.get("spool_after_s", 30), "records.spool_after_s", 0, 86400),
        max_memory_items=_count(c, d.get("max_memory_items", 50_000),
                                "records.max_memory_items", 100, 10_000_000),
        write_timeout_s=c.number(d.get("write_timeout_s", 30), "records.write_timeout_s",
                                 1, 600))


def _sms(c: _Cfg, raw: Any, base: Path, nodes: Any, country: str = DEFAULT_COUNTRY) -> SmsConfig:
    """``sms:`` -- the rules file, the transport and its settings."""
    d = c.mapping(raw, "sms")
    c.known(d, "sms", {"policy", "transport", "mqtt", "smpp", "max_age_h", "poll_s",
                      "idle_s"})
    ppath = Path(c.text(d.get("policy", "sms.example.yaml"), "sms.policy"))
    try:
        policy = load_sms_policy(ppath if ppath.is_absolute() else base / ppath,
                                 known_nodes=list(nodes), country=country)
    except SmsPolicyError as exc:
        if exc.line == 0:  # the file as a whole: placed here
            raise c.err("sms.policy", f"{exc.problem}: {exc.file}") from None
        raise ConfigError(str(exc)) from None
    for node in nodes.values():
        if isinstance(node.body, Sms) and node.body.template not in policy.templates:
            raise ConfigError(f"{node.file}:{node.line}:{node.column}: node {node.name!r}: "
                              f"SMS template {node.body.template!r} is not in {policy.file} "
                              f"(templates: {', '.join(policy.templates)})")
    transport = c.text(d.get("transport", "log"), "sms.transport")
    if transport not in ("log", "mqtt", "smpp"):
        raise c.err("sms.transport", f"{transport!r} is not one of: log, mqtt, smpp")
    mqtt = smpp = None
    if transport == "mqtt":
        from acd.adapters.sms_mqtt import MqttConfig
        m = c.mapping(d.get("mqtt", {}), "sms.mqtt")
        c.known(m, "sms.mqtt", {"host", "port", "username", "password", "prefix", "client_id"})
        mqtt = MqttConfig(host=c.text(m.get("host", "127.0.0.1"), "sms.mqtt.host"),
                          port=c.port(m.get("port", 1883), "sms.mqtt.port"),
                          username=m.get("username"), password=m.get("password"),
                          prefix=c.text(m.get("prefix", "acd"), "sms.mqtt.prefix"),
                          client_id=c.text(m.get("client_id", "acd-engine"),
                                           "sms.mqtt.client_id"))
    elif transport == "smpp":
        from acd.adapters.sms_smpp import SmppConfig
        m = c.mapping(d.get("smpp", {}), "sms.smpp")
        c.known(m, "sms.smpp", {"host", "port", "system_id", "password", "system_type",
                                "source_addr", "dest_ton", "dest_npi"})
        smpp = SmppConfig(host=c.text(m.get("host", "127.0.0.1"), "sms.smpp.host"),
                          port=c.port(m.get("port", 2775), "sms.smpp.port"),
                          system_id=c.text(m.get("system_id", "acd"), "sms.smpp.system_id"),
                          password=str(m.get("password", "")),
                          system_type=str(m.get("system_type", "")),
                          source_addr=str(m.get("source_addr", policy.sender)),
                          # the outbox holds national numbers (13800138000): TON 0
                          dest_ton=int(c.number(m.get("dest_ton", 0), "sms.smpp.dest_ton", 0, 6)),
                          dest_npi=int(c.number(m.get("dest_npi", 1), "sms.smpp.dest_npi", 0, 18)))
    sender = SenderConfig(sender=policy.sender,
                          max_age_h=c.number(d.get("max_age_h", 48), "sms.max_age_h", 1, 24 * 30),
                          poll_s=c.number(d.get("poll_s", 1), "sms.poll_s", 0.05, 60),
                          idle_s=c.number(d.get("idle_s", 60), "sms.idle_s", 0.05, 3600))
    if sender.idle_s < sender.poll_s:
        raise c.err("sms.idle_s", f"{sender.idle_s:g} is shorter than sms.poll_s "
                    f"({sender.poll_s:g}): the longest wait between two reads of the outbox "
                    "cannot be shorter than the shortest")
    return SmsConfig(policy=policy, transport=transport, mqtt=mqtt, smpp=smpp, sender=sender)


def _events(c: _Cfg, raw: Any, server: Any) -> EventsConfig:
    """``events:`` -- the event bus's broker, topics and queue (docs/events.md)."""
    d = c.mapping(raw, "events")
    c.known(d, "events", {"transport", "host", "port", "topic_prefix", "qos", "client_id",
                          "username", "password", "queue_limit", "queue_every_s"})
    transport = c.text(d.get("transport", "mqtt"), "events.transport")
    if transport != "mqtt":
        raise c.err("events.transport", f"{transport!r} is not one of: mqtt")
    if importlib.util.find_spec("aiomqtt") is None:
        raise c.err("events.transport", "mqtt needs the aiomqtt package: "
                    "pip install 'acd[mqtt]' (in a checkout: pip install -e '.[mqtt]')")
    prefix = c.text(d.get("topic_prefix", "acd"), "events.topic_prefix")
    if any(ch in prefix for ch in "+#\x00") or prefix.startswith("/") or prefix.endswith("/") \
            or "//" in prefix:
        raise c.err("events.topic_prefix", f"{prefix!r} must be MQTT topic levels without "
                    "wildcards (+ #) or empty levels, e.g. acd or tenant1/acd")
    if any(ch in str(server) for ch in "/+#"):
        raise c.err("server", f"{server!r} is a topic level of the events: "
                    "it may not contain / + #")
    qos = d.get("qos", 1)
    if isinstance(qos, bool) or not isinstance(qos, int) or qos not in (0, 1, 2):
        raise c.err("events.qos", "must be 0, 1 or 2 (the MQTT QoS)")
    limit = d.get("queue_limit", 10_000)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000_000:
        raise c.err("events.queue_limit", "must be a whole number from 1 to 10000000 "
                    "(events held while the broker is away)")

    def optional(key: str) -> str | None:
        return None if d.get(key) is None else c.text(d[key], f"events.{key}")

    return EventsConfig(
        transport=transport, host=c.text(d.get("host", "127.0.0.1"), "events.host"),
        port=c.port(d.get("port", 1883), "events.port"), topic_prefix=prefix, qos=qos,
        client_id=optional("client_id"), username=optional("username"),
        password=None if d.get("password") is None else str(d["password"]),
        queue_limit=limit,
        queue_every_s=c.number(d.get("queue_every_s", 5), "events.queue_every_s", 0, 3600))


def _api(c: _Cfg, top: dict[str, Any], base: Path) -> ApiConfig:
    """``api:`` -- the control API's listener, token file and TLS, and the SMS
    link's public listener (``api_port``/``api_host`` at the top level: the
    old spelling of ``api.port``/``api.host``)."""
    d = c.mapping(top.get("api") or {}, "api")
    c.known(d, "api", {"host", "port", "token_file", "tls", "allow_plain_http", "public"})
    for old in ("port", "host"):
        if f"api_{old}" in top and old in d:
            raise c.err(f"api_{old}", f"give it once: api.{old} (api_{old} is its old spelling)",
                        key=True)
    host = c.text(d.get("host", top.get("api_host", "127.0.0.1")),
                  "api.host" if "host" in d else "api_host")
    port_raw, port_at = (d.get("port"), "api.port") if "port" in d \
        else (top.get("api_port"), "api_port")
    port = None if port_raw is None else c.port(port_raw, port_at)

    def path(raw: Any, where: str) -> Path:
        p = Path(c.text(raw, where))
        return p if p.is_absolute() else base / p

    token_file = path(d.get("token_file", DEFAULT_TOKEN_FILE), "api.token_file")
    plain = d.get("allow_plain_http", False)
    if not isinstance(plain, bool):
        raise c.err("api.allow_plain_http", "must be true or false")
    tls: TlsConfig | None = None
    if d.get("tls") is not None:
        t = c.mapping(d["tls"], "api.tls")
        c.known(t, "api.tls", {"cert", "key", "client_ca", "client_roles"})
        for need in ("cert", "key"):
            if need not in t:
                raise c.err("api.tls", f"needs {need}: (a PEM file)")
        roles: dict[str, Role] = {}
        for name, role_name in c.mapping(t.get("client_roles") or {}, "api.tls.client_roles") \
                .items():
            role = Role.named(str(role_name))
            if role is None:
                raise c.err(f"api.tls.client_roles.{name}", f"{role_name!r} is not a role "
                            f"({', '.join(ROLE_NAMES)})")
            roles[str(name)] = role
        if roles and t.get("client_ca") is None:
            raise c.err("api.tls.client_roles", "needs api.tls.client_ca (the CA that signs the "
                        "client certificates)", key=True)
        tls = TlsConfig(cert=path(t["cert"], "api.tls.cert"), key=path(t["key"], "api.tls.key"),
                        client_ca=None if t.get("client_ca") is None
                        else path(t["client_ca"], "api.tls.client_ca"),
                        client_roles=roles)
        if port is not None:
            try:
                server_context(tls)  # the files, read now: a problem stops the start here
            except ApiSetupError as exc:
                raise c.err("api.tls", str(exc)) from None
    pub = c.mapping(d.get("public") or {}, "api.public")
    c.known(pub, "api.public", {"host", "port"})
    public_port = None if pub.get("port") is None else c.port(pub["port"], "api.public.port")
    config = ApiConfig(host=host, port=port, token_file=token_file, tls=tls,
                       allow_plain_http=plain,
                       public_host=c.text(pub.get("host", "127.0.0.1"), "api.public.host"),
                       public_port=public_port)
    problem = config.problem()
    if problem is not None:
        raise c.err("api.host" if "host" in d else "api_host", problem.partition(": ")[2])
    if port is not None and public_port is not None and port == public_port \
            and port != 0:
        raise c.err("api.public.port", f"{public_port} is the control API's port too: the "
                    "SMS link's listener needs a port of its own")
    return config
