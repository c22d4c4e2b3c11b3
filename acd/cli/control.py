"""``acd agents live ...``, ``acd queue show`` and ``acd explain``: operating
the running engine.

    acd agents live show [ID]              the live agents (state, reason, call, occupancy)
    acd agents live login ID [--paused]
    acd agents live logout ID
    acd agents live ready ID
    acd agents live pause ID [--reason R]
    acd agents live set ID --skill billing=7 --drop-skill vip --vip ...
    acd queue show [NAME] [--watch]        queues and waiting callers; --watch: a live wallboard
    acd explain CALL_ID                    why each offer of a call went to its agent (database)

``acd agents live`` and ``acd queue`` talk to ``acd serve`` over its control
API (``api_port`` in acd.yaml; see docs/operations.md).  The other ``acd
agents`` commands (import, list, set; :mod:`acd.cli.profiles`) edit the
stored profiles in the database instead, without a running engine.  The old
``acd agent ...`` still works, hidden, with a notice pointing to the new name.

They send the admin token of the control API's token file (``api.token_file``
of ./acd.yaml, default ./acd-api.tokens; ``--token`` or $ACD_API_TOKEN
instead).

Exit codes: 0 done; 1 the engine refused (unknown agent or queue, not
allowed in the agent's state, a bad value) or the call is unknown; 3 the
database failed (explain); 4 the engine cannot be reached; 5 the engine
refused the credentials (401: no or a wrong token; 403: a role too low) or
they cannot be used (the token file readable by others, a TLS problem).
"""

from __future__ import annotations

import datetime as dt
import sys
import urllib.parse
from time import sleep
from typing import Any

import click
from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from acd.adapters.storage import Database
from acd.cli.common import (
    EXIT_REFUSED,
    ApiRefused,
    Client,
    EngineUnreachable,
    api_option,
    call_api,
    console,
    db_option,
    err_console,
    levels,
    profile_options,
    run_db,
)
from acd.cli.common import shown as escape  # rich markup AND control characters escaped
from acd.logs import printable

WATCH_EVERY_S = 2.0
#: score terms in the order `acd explain` shows them (others follow, sorted)
TERM_ORDER = ("dialect", "skill_level", "language", "gender", "age_band", "last_agent", "idle")
STATE_STYLE = {"ready": "green", "reserved": "cyan", "on_call": "yellow", "wrap_up": "blue",
               "paused": "red", "logged_out": "dim"}


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


# -------------------------------------------------------------- formatting


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 1h02m; '-' for None."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def _board(title: str) -> Table:
    """A wallboard table: no vertical rules, so that many figures fit a terminal."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1),
                 collapse_padding=True, pad_edge=False)


def agents_table(agents: list[dict[str, Any]]) -> Table:
    table = _board(f"agents ({len(agents)})")
    for col in ("id", "name", "ext", "state", "for", "reason", "call", "skills", "handled",
                "occupancy"):
        table.add_column(col, justify="right" if col in ("handled", "occupancy") else "left",
                         no_wrap=col not in ("name", "reason", "call", "skills"), overflow="fold")
    for a in agents:
        table.add_row(escape(a["id"]), escape(a["name"]) or "-", a["extension"],
                      _state(a["state"]), duration(a.get("in_state_s")),
                      escape(a["reason"]) or "-", escape(a["call_id"] or "-"),
                      escape(levels(a["skills"])), str(a["calls_handled"]),
                      _pct(a["occupancy"]))
    return table


def agent_detail(a: dict[str, Any], title: str | None = None) -> Table:
    table = Table(title=title or f"agent {escape(a['id'])}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("id", escape(a["id"])), ("name", escape(a["name"]) or "-"),
        ("extension", a["extension"]), ("state", _state(a["state"])),
        ("in state for", duration(a.get("in_state_s"))), ("reason", escape(a["reason"]) or "-"),
        ("call", escape(a["call_id"] or "-")), ("skills", escape(levels(a["skills"]))),
        ("dialects", escape(levels(a["dialects"]))),
        ("languages", escape(" ".join(a.get("languages", []))) or "-"),
        ("gender", a["gender"] or "-"), ("age band", a["age_band"] or "-"),
        ("groups", escape(" ".join(a["groups"])) or "-"),
        ("VIP", "yes" if a["vip_qualified"] else "no"),
        ("calls handled", str(a["calls_handled"])), ("occupancy", _pct(a["occupancy"])),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table


def queues_table(queues: list[dict[str, Any]], title: str = "queues") -> Table:
    table = _board(title)
    # the skill column only when some queue's skill is not its name
    show_skill = any(q["skill"] != q["name"] for q in queues)
    cols = ("queue", "skill", "waiting", "longest", "ringing", "staffed", "ready",
            "offered", "answered", "abandoned", "SL", "target", "ASA", "aband%")
    for col in cols:
        if col == "skill" and not show_skill:
            continue
        table.add_column(col, justify="left" if col in ("queue", "skill") else "right",
                         no_wrap=True)
    for q in queues:
        waiting = Text(str(q["waiting"]), style="bold red" if q["waiting"] else "")
        sl = Text(_pct(q["service_level"]), style="" if q["sl_met"] is None else
                  ("green" if q["sl_met"] else "red"))
        target = "-" if q["sl_target"] is None else \
            f"{100 * q['sl_target']:.0f}%/{q['sl_threshold_s']:g}s"
        cells: list[str | Text] = [escape(q["name"])]
        if show_skill:
            cells.append(escape(q["skill"]))
        cells += [waiting, duration(q["longest_wait_s"]), str(q["ringing"]), str(q["staffed"]),
                  str(q["ready"]), str(q["offered"]), str(q["answered"]), str(q["abandoned"]),
                  sl, target, _secs(q["asa_s"]), _pct(q["abandon_rate"])]
        table.add_row(*cells)
    return table


def waiting_table(q: dict[str, Any]) -> Table:
    table = _board(f"waiting in {escape(q['name'])} ({len(q['calls'])})")
    for col in ("pos", "call", "caller", "class", "prio", "waited", "expected", "dialect",
                "VIP", "steps"):
        table.add_column(col, justify="right" if col in ("pos", "prio", "steps") else "left",
                         no_wrap=col != "call", overflow="fold")
    for c in q["calls"]:
        attrs = c["attributes"]
        table.add_row(str(c["position"] or "-"), escape(c["call_id"]), escape(c["caller"]),
                      escape(c["customer_class"]) or "-", str(c["priority"]),
                      duration(c["waited_s"]), duration(c["expected_wait_s"]),
                      escape(attrs.get("dialect", "")) or "-",
                      escape(attrs.get("vip_level", "")) or "-", str(c["escalation_steps"]))
    return table


def queue_view(client: Client, name: str | None) -> RenderableType:
    if name is None:
        return queues_table(client.get("/queues"))
    q = client.get(f"/queues/{_q(name)}")
    parts: list[RenderableType] = [queues_table([q], f"queue {escape(q['name'])}")]
    if q["calls"]:
        parts.append(waiting_table(q))
    else:
        parts.append(Text("nobody waiting", style="dim"))
    if q.get("offered_calls"):
        ringing = ", ".join(f"{c['call_id']} → {c['agent_id']}" for c in q["offered_calls"])
        parts.append(Text(printable(f"ringing: {ringing}")))
    return Group(*parts)


# ------------------------------------------------------------- agents live


@click.group("live", short_help="The RUNNING engine's agents (control API): show, login, "
                                "logout, ready, pause, set.")
def live() -> None:
    """The RUNNING engine's agents, live over its control API (`acd serve`
    with api_port): show, log in/out, ready, pause, change skills now.

    The other `acd agents` commands (import, list, set) work on the agent
    profiles STORED in the database, engine running or not. `acd agents
    live set` changes both the live agent and its stored profile.
    """


@live.command("show")
@click.argument("agent_id", required=False)
@api_option
def agent_show(agent_id: str | None, api: str | None) -> None:
    """All agents in a table, or the detail of AGENT_ID."""
    if agent_id is None:
        agents = call_api(api, lambda c: c.get("/agents"))
        if not agents:
            console.print("the engine has no agents")
            return
        console.print(agents_table(agents))
    else:
        console.print(agent_detail(call_api(api, lambda c: c.get(f"/agents/{_q(agent_id)}"))))


def _changed(a: dict[str, Any]) -> None:
    reason = f" ({escape(a['reason'])})" if a["reason"] else ""
    name = f" ({escape(a['name'])})" if a["name"] else ""
    call = f", call {escape(a['call_id'])}" if a["call_id"] else ""
    leaving = ", logs out when the call ends" if a.get("logout_after_call") else ""
    pausing = a.get("pause_after_call")
    if pausing and not leaving:
        leaving = f", paused after the current call ({escape(pausing)})"
    console.print(f"agent {escape(a['id'])}{name}: ", _state(a["state"]), reason, call, leaving,
                  sep="")


@live.command("login")
@click.argument("agent_id")
@click.option("--paused", is_flag=True, help="Log in paused instead of ready.")
@api_option
def agent_login(agent_id: str, paused: bool, api: str | None) -> None:
    """Log AGENT_ID in (ready, unless --paused)."""
    _changed(call_api(api, lambda c: c.post(f"/agents/{_q(agent_id)}/login",
                                         {"ready": not paused})))


@live.command("logout")
@click.argument("agent_id")
@api_option
def agent_logout(agent_id: str, api: str | None) -> None:
    """Log AGENT_ID out (ringing or on a call: as soon as that call ends)."""
    _changed(call_api(api, lambda c: c.post(f"/agents/{_q(agent_id)}/logout")))


@live.command("ready")
@click.argument("agent_id")
@api_option
def agent_ready(agent_id: str, api: str | None) -> None:
    """Make AGENT_ID ready for calls."""
    _changed(call_api(api, lambda c: c.post(f"/agents/{_q(agent_id)}/ready")))


@live.command("pause")
@click.argument("agent_id")
@click.option("--reason", default="", help="Shown with the agent, e.g. lunch, training.")
@api_option
def agent_pause(agent_id: str, reason: str, api: str | None) -> None:
    """Pause AGENT_ID (no new calls until `acd agents live ready`)."""
    _changed(call_api(api, lambda c: c.post(f"/agents/{_q(agent_id)}/pause", {"reason": reason})))


@live.command("set")
@click.argument("agent_id")
@profile_options
@api_option
def agent_set(agent_id: str, skills: tuple[tuple[str, int], ...], drop_skills: tuple[str, ...],
              dialects: tuple[tuple[str, int], ...], drop_dialects: tuple[str, ...],
              gender: str | None, age_band: str | None, groups: tuple[str, ...],
              vip: bool | None, extension: str | None, api: str | None) -> None:
    """Change a live agent's profile now; routing uses it from the next
    offer, and it is stored in the database too (it survives a restart), e.g.

        acd agents live set a1001 --skill billing=7 --drop-skill vip --dialect minnan=8 --vip
    """
    body: dict[str, Any] = {}
    if skills:
        body["skills"] = dict(skills)
    if drop_skills:
        body["drop_skills"] = [s.strip() for s in drop_skills]
    if dialects:
        body["dialects"] = dict(dialects)
    if drop_dialects:
        body["drop_dialects"] = [d.strip() for d in drop_dialects]
    if gender is not None:
        body["gender"] = gender
    if age_band is not None:
        body["age_band"] = age_band
    if groups:
        body["groups"] = list(groups)
    if vip is not None:
        body["vip_qualified"] = vip
    if extension is not None:
        body["extension"] = extension
    if not body:
        raise click.UsageError("nothing to change: give at least one option "
                               "(see `acd agents live set --help`)")
    both = set(dict(skills)) & {s.strip() for s in drop_skills}
    if both:
        raise click.BadParameter(f"skill {sorted(both)[0]!r} is both set and dropped",
                                 param_hint="'--drop-skill'")
    updated = call_api(api, lambda c: c.post(f"/agents/{_q(agent_id)}/profile", body))
    console.print(agent_detail(updated, f"agent {escape(agent_id)} updated (live and stored)"))


@click.group("agent", hidden=True)
@click.pass_context
def agent_alias(ctx: click.Context) -> None:
    """Deprecated: `acd agents live ...` (the same commands)."""
    command = f"acd agents live {ctx.invoked_subcommand}".rstrip()
    click.echo(f"note: `acd agent` is deprecated; use `{command}`", err=True)


for _command in live.commands.values():
    agent_alias.add_command(_command)


# ------------------------------------------------------------------ queue


@click.group("queue", short_help="Live queues of the running engine (control API); "
                                 "a wallboard with --watch.")
def queue() -> None:
    """The RUNNING engine's queues, over its control API: waiting callers,
    staffing and today's service level (`acd queue show --watch`: a wallboard)."""


def _watch(client: Client, name: str | None, every: float) -> None:
    """Redraw the view every ``every`` seconds until Ctrl-C; an engine that goes
    away is shown, and retried, rather than ending the watch."""
    def frame() -> RenderableType:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        try:
            view = queue_view(client, name)
        except EngineUnreachable as exc:
            view = Text(f"cannot reach the engine at {client.base} ({exc}); retrying",
                        style="red")
        except ApiRefused as exc:
            view = Text(printable(f"error: {exc.message}"), style="red")
        return Group(view, Text(f"{stamp}, every {every:g} s; Ctrl-C to stop", style="dim"))

    queue_view(client, name)  # fail fast (exit 1 or 4) if it cannot work at all
    try:
        with Live(frame(), console=console, auto_refresh=False) as live:
            while True:
                sleep(every)
                live.update(frame(), refresh=True)
    except KeyboardInterrupt:
        pass


@queue.command("show")
@click.argument("name", required=False)
@click.option("--watch", is_flag=True, help="Keep the view up, refreshed, until Ctrl-C.")
@click.option("--every", default=WATCH_EVERY_S, show_default=True, metavar="SECONDS",
              type=click.FloatRange(min=0.2), help="Refresh interval with --watch.")
@api_option
def queue_show(name: str | None, watch: bool, every: float, api: str | None) -> None:
    """All queues, or queue NAME with its waiting callers in service order."""
    if watch:
        call_api(api, lambda c: _watch(c, name, every))
    else:
        console.print(call_api(api, lambda c: queue_view(c, name)))


# ---------------------------------------------------------------- explain


def _local(value: object) -> str:
    if not isinstance(value, dt.datetime):
        return "-"
    when: dt.datetime = value if value.tzinfo is not None \
        else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _term_names(candidates: list[dict[str, Any]]) -> list[str]:
    seen = {t for c in candidates for t in c.get("terms", {})}
    return [t for t in TERM_ORDER if t in seen] + sorted(seen - set(TERM_ORDER))


def _candidates_table(offer: dict[str, Any]) -> Table:
    candidates: list[dict[str, Any]] = offer["candidates"]
    terms = _term_names(candidates)
    table = Table(title=f"candidates of offer {offer['offer_id']}", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("agent", no_wrap=True)
    table.add_column("score", justify="right")
    for t in terms:
        table.add_column(escape(t), justify="right")
    for c in candidates:
        chosen = c["agent_id"] == offer["agent_id"]
        table.add_row("✓" if chosen else "", escape(c["agent_id"]), f"{c['score']:.3f}",
                      *(f"{c['terms'][t]:.3f}" if t in c["terms"] else "-" for t in terms),
                      style="bold green" if chosen else None)
    return table


def _outcome(rec: dict[str, Any]) -> str:
    outcome = rec["outcome"]
    queue_text = f" in {rec['queue']}" if rec.get("queue") else ""
    if rec.get("first_queue"):
        queue_text += f" (overflowed from {rec['first_queue']})"
    if outcome == "answered":
        return (f"answered by {rec['agent_id']}{queue_text} after {_secs(rec['wait_s'])} "
                f"waiting, talked {_secs(rec['talk_s'])}")
    if outcome == "abandoned":
        return f"abandoned{queue_text} after {_secs(rec['wait_s'])} waiting"
    if outcome == "fallback":
        return f"sent to the fallback{queue_text} after {_secs(rec['wait_s'])} waiting"
    return f"ended in the IVR (path {rec.get('ivr_path') or '-'})"


@click.command("explain")
@click.argument("call_id")
@db_option
def explain(call_id: str, db_url: str | None) -> None:
    """Why CALL_ID went where it went: each offer's queue, class, priority,
    wait, escalation steps and reason, the candidates with their score terms
    (the chosen one marked), and the call's outcome. Reads the database."""
    async def load(db: Database) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        return await db.call(call_id), await db.explanations_for(call_id)

    rec, offers = run_db(db_url, load)
    if rec is None and not offers:
        err_console.print(f"[red]error:[/red] no call {escape(call_id)!r} in the database "
                          "(call ids are Asterisk uniqueids, e.g. 1718000000.42)")
        sys.exit(EXIT_REFUSED)
    console.print(f"[bold]call {escape(call_id)}[/bold]")
    if rec is not None:
        console.print(f"caller {escape(rec['caller'])}"
                      + (f" ({escape(rec['caller_name'])})" if rec["caller_name"] else "")
                      + f", started {_local(rec['started_at'])}, ended {_local(rec['ended_at'])}")
        console.print(f"outcome: {escape(_outcome(rec))}; {rec['offers']} "
                      f"offer{'s' if rec['offers'] != 1 else ''}")
    else:
        console.print("no call record yet: the call is still in progress (or its record "
                      "is not written yet)")
    if not offers:
        console.print("never offered to an agent")
    for o in offers:
        console.print()
        console.print(f"[bold]offer {o['offer_id']}[/bold] at {_local(o['at'])} → "
                      f"[bold]{escape(o['agent_id'])}[/bold]")
        console.print(f"  queue {escape(o['queue'])}, class {escape(o['customer_class']) or '-'}, "
                      f"priority {o['priority']}, waited {_secs(o['waited_s'])}")
        steps = "; ".join(o["stage"]) if o["stage"] else "none"
        console.print(f"  escalation steps applied: {escape(steps)}")
        console.print(f"  reason: {escape(o['reason'])}")
        if o["candidates"]:
            console.print(_candidates_table(o))
