"""The FastAGI side, probed as an attacker would (issue 13).

Quick tests first: the call's secret on the channel and what a script
naming a call without it gets; the secret across an engine restart; a new
call's channel proven over AMI (a fake hotline naming a real channel, a
squatter on the next uniqueid, AMI that cannot tell); the ``agi:``
settings.  Then the live probes (slow), each with real ``acd
serve`` processes against the PBX simulator and 100+ simulated calls
flowing (tests/faults.py), checked as the fault suite checks: every call
ends in exactly one record with the outcome the caller lived, no caller
hung up by the engine, nothing left in progress; and each refusal kind is
logged once with its count:

- hijack: a raw FastAGI peer names the live calls' uniqueids in requeue,
  resume, fallback and hotline, without the secret, with a wrong one, with
  none at all (then asked with GET VARIABLE): every try refused, nothing
  sent to it that a channel would get, every call served; it opens hotlines
  of its own naming the live calls' channels (no call: closed after the
  secret, no offer ever given to those channels but their own) and squats
  the uniqueids Asterisk gives next (the caller's own session takes the
  call);
- caller names that are not UTF-8 (raw GBK and Latin-1 bytes, as Asterisk
  copies a SIP display name): every call kept and recorded (U+FFFD);
- 520 flood: fake peers answer the first command with a 520 usage body
  that never ends: each session cut at its bound, the engine's memory
  flat, their fake calls never calls (cut before their channel was
  proven: no record), the real ones fine;
- 20,000 idle FastAGI connections held open (re-opened as the engine
  closes them) while the calls flow: at most ``agi.max_connections`` open,
  memory bounded, the AMI link never lost (1 s pings), no call stranded.

Each probe prints its figures (``[probe] ...``; run with ``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import random
import re
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from faults import (
    EngineProcess,
    Load,
    Verdict,
    engine_yaml,
    free_port,
    pbx_config,
    stop_all,
    verdict,
)
from helpers import SECRET, db_url, engine_on_pbx, pbx_for_engine

from acd.adapters.ami import AmiConfig
from acd.adapters.fastagi import FD_RESERVE
from acd.adapters.storage import Database
from acd.core.center import agents_for_queues
from acd.core.model import CallState, CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.load import load_flow
from acd.protocols.agi import encode_request
from acd.runtime import agi_scripts
from acd.runtime.continuity import SECRET_VAR
from acd.runtime.engine import Engine
from acd.runtime.settings import ConfigError, EngineConfig, parse_config
from sim.config import CallerScript, CallResult, PhoneBehaviour
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")
REFUSED = "without the call's secret"


# ------------------------------------------------------------------ a raw peer


def request(script: str, uid: str, *, args: tuple[str, ...] | None = None,
            name: str = "Mallory", channel: str = "PJSIP/evil-00000001") -> bytes:
    """A FastAGI request header as a peer faking Asterisk writes it."""
    env = {"agi_network": "yes", "agi_network_script": script,
           "agi_request": f"agi://127.0.0.1:4573/{script}", "agi_channel": channel,
           "agi_language": "en", "agi_type": "PJSIP", "agi_uniqueid": uid,
           "agi_callerid": "66600000000", "agi_calleridname": name,
           "agi_context": "acd-connect", "agi_extension": "1001", "agi_priority": "3"}
    for i, arg in enumerate(args or (), start=1):
        env[f"agi_arg_{i}"] = arg
    return encode_request(env)


async def raw_session(port: int, head: bytes, timeout: float = 10.0) -> list[str]:
    """Send ``head`` and answer like Asterisk until the engine closes the
    socket: a wrong secret to GET VARIABLE, ``200 result=0`` to anything
    else.  Returns the commands the engine sent."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    seen: list[str] = []
    try:
        w.write(head)
        async with asyncio.timeout(timeout):
            while True:
                try:
                    line = await r.readline()
                except ConnectionResetError:
                    break
                if not line:
                    break
                seen.append(line.decode(errors="replace").strip())
                if line.startswith(b"GET VARIABLE"):
                    w.write(b"200 result=1 (" + secrets.token_urlsafe(16).encode() + b")\n")
                else:
                    w.write(b"200 result=0\n")
    finally:
        w.close()
    return seen


# ------------------------------------------------- quick: the secret in-process


def _config(tmp_path: Path, agents: int = 1, **kw: Any) -> EngineConfig:
    policy = simple_policy({q: 5 for q in sorted(FLOW.queues)})
    return EngineConfig(
        core=CoreConfig(policy=policy, agents=agents_for_queues(
            {f"a{1001 + i}": (str(1001 + i), tuple(policy.queues)) for i in range(agents)}),
            wrap_up_s=0.05, rona_pause_s=None),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET),
        database_url=db_url(tmp_path), **kw)


async def _queued(engine: Engine, uid: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = engine.core.call(uid)
        if call is not None and call.state is CallState.WAITING:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"call {uid} not queued within {timeout}s")


async def test_a_script_naming_a_call_needs_its_secret(tmp_path: Path) -> None:
    """The hotline sets a random secret on the channel; requeue, resume and
    fallback naming the call without it are refused and change nothing."""
    async with engine_on_pbx(_config(tmp_path, login_agents=False)) as (pbx, engine):
        h = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=None,
                                              key_delay_s=0.02))
        await _queued(engine, h.uniqueid)
        call = engine.calls.get(h.uniqueid)
        assert call is not None and call.secret is not None and len(call.secret) >= 22
        chan = pbx.channels.find(h.uniqueid)
        assert chan is not None and pbx.read_var(chan, SECRET_VAR) == call.secret
        assert call.secret not in repr(call)  # not in the logs by accident
        port = engine.agi.port
        tries = [
            ("requeue?status=NOANSWER&offer=1&server=pbx1", ("nope",)),
            ("requeue?status=NOANSWER&offer=1&server=pbx1", ("",)),
            ("requeue?status=NOANSWER&offer=1&server=pbx1", None),  # asked for it
            ("resume?server=pbx1", (call.secret[:-1] + "x",)),
            ("fallback?kind=callback&server=pbx1", ("nope",)),
        ]
        for script, args in tries:
            sent = await raw_session(port, request(script, h.uniqueid, args=args))
            assert sent == ([] if args is not None else ["GET VARIABLE ACD_CALL_SECRET"]), sent
        # a second hotline for it is hung up: that session, not the call
        assert await raw_session(port, request("hotline?server=pbx1", h.uniqueid)) == ["HANGUP"]
        assert engine.scripts.refused == len(tries)
        assert engine.agi.dropped["refused-secret"] == len(tries)
        assert call.channel == h.channel and h.phase == "hold"
        assert engine.core.call(h.uniqueid).state is CallState.WAITING  # type: ignore[union-attr]
        h.hangup()
        await h.done
        # once it has ended, its uniqueid starts no call of a peer's either
        for script, args in (("resume?server=pbx1", ("nope",)), ("hotline?server=pbx1", None),
                             ("requeue?status=NOANSWER&offer=1&server=pbx1", None)):
            sent = await raw_session(port, request(script, h.uniqueid, args=args))
            assert sent in ([], ["GET VARIABLE ACD_CALL_SECRET"]), (script, sent)
        assert engine.agi.dropped["refused-secret"] == len(tries) + 2
        assert engine.agi.dropped["refused-ended"] == 1
        await engine.writer.drain()
        (rec,) = await engine.db.calls()
        assert (rec["call_id"], rec["outcome"]) == (h.uniqueid, "abandoned")
        assert engine.calls.get(h.uniqueid) is None


async def test_a_restarted_engine_reads_the_secrets_back_from_the_channels(
        tmp_path: Path) -> None:
    """The secret lives on the channel: an engine that takes over reads it
    from CoreShowChannels (manager.conf channelvars), so the callers'
    resume gets in and a peer without it does not."""
    cfg = _config(tmp_path, login_agents=False)
    pbx = SimPBX(pbx_for_engine(recover_wait_s=1))
    await pbx.start()
    try:
        first = Engine(replace(cfg, agi_port=0, ami=replace(cfg.ami, port=pbx.ami_port)))
        await first.start()
        pbx.cfg.agi_url = f"agi://127.0.0.1:{first.agi.port}"
        handles = [await pbx.place_call(CallerScript(number=f"1380000000{i}", keys=["", "1"],
                                                     patience_s=None, key_delay_s=0.02))
                   for i in range(3)]
        for h in handles:
            await _queued(first, h.uniqueid)
        known = {h.uniqueid: first.calls.get(h.uniqueid).secret  # type: ignore[union-attr]
                 for h in handles}
        await first.stop()
        second = Engine(replace(cfg, agi_port=0, ami=replace(cfg.ami, port=pbx.ami_port)))
        await second.start()
        try:
            pbx.cfg.agi_url = f"agi://127.0.0.1:{second.agi.port}"
            assert {uid: second.calls.get(uid).secret  # type: ignore[union-attr]
                    for uid in known} == known
            # every caller resumes (its dialplan passes the secret): on hold again
            deadline = time.monotonic() + 15
            while second.counters.calls_resumed < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert second.counters.calls_resumed == 3
            assert second.scripts.refused == 0 and second.scripts.unchecked == 0
            uid = handles[0].uniqueid
            assert await raw_session(second.agi.port, request(
                "resume?server=pbx1", uid, args=("guess",))) == []
            assert second.scripts.refused == 1
            for h in handles:
                h.hangup()
            results = [await h.done for h in handles]
            assert all(r.outcome.value == "abandoned_hold" for r in results)
            await second.writer.drain()
            recs = {r["call_id"]: r["outcome"] for r in await second.db.calls()}
            assert recs == dict.fromkeys(known, "abandoned")
        finally:
            await second.stop()
    finally:
        await pbx.stop()


async def test_without_the_secret_in_channelvars_a_restart_takes_calls_unchecked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A manager.conf without ACD_CALL_SECRET in channelvars: the start-up
    says so, and the first script of each call taken over gets in."""
    cfg = _config(tmp_path, login_agents=False)
    pbx = SimPBX(pbx_for_engine(recover_wait_s=1,
                                channelvars=("ACD_CALL_ID", "ACD_QUEUED", "ACD_OFFER")))
    await pbx.start()
    try:
        first = Engine(replace(cfg, agi_port=0, ami=replace(cfg.ami, port=pbx.ami_port)))
        await first.start()
        pbx.cfg.agi_url = f"agi://127.0.0.1:{first.agi.port}"
        h = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=None,
                                              key_delay_s=0.02))
        await _queued(first, h.uniqueid)
        await first.stop()
        second = Engine(replace(cfg, agi_port=0, ami=replace(cfg.ami, port=pbx.ami_port)))
        await second.start()
        try:
            pbx.cfg.agi_url = f"agi://127.0.0.1:{second.agi.port}"
            assert any("does not show ACD_CALL_SECRET" in r.getMessage()
                       for r in caplog.records)
            deadline = time.monotonic() + 15
            while second.counters.calls_resumed < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert second.scripts.unchecked == 1 and second.scripts.refused == 0
            h.hangup()
            await h.done
        finally:
            await second.stop()
    finally:
        await pbx.stop()


# ------------------------------------ quick: a new call's channel, proven over AMI


class Peer:
    """A peer faking Asterisk that answers ``200 result=0`` to the first
    ``answered`` commands, then stalls (reads, answers nothing) until the
    engine closes the socket (``closed`` then set; not by :meth:`stop`)."""

    def __init__(self, port: int, head: bytes, answered: int = 1_000) -> None:
        self.port, self.head, self.answered = port, head, answered
        self.seen: list[str] = []
        self.closed = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            w.write(self.head)
            while True:
                try:
                    line = await r.readline()
                except ConnectionError:
                    line = b""
                if not line:
                    self.closed.set()
                    break
                self.seen.append(line.decode(errors="replace").split(" ")[0].strip())
                if len(self.seen) <= self.answered:
                    w.write(b"200 result=0\n")
        finally:
            w.close()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self.task


#: what a new call's session is sent before its channel is proven
WELCOME = ["SET", "ANSWER"]


def _two_agents(tmp_path: Path) -> EngineConfig:
    """a1001 takes every queue, a1002 only ``general`` (where a peer that
    answers ``200 result=0`` to everything ends up)."""
    policy = simple_policy({q: 5 for q in sorted(FLOW.queues)})
    agents = agents_for_queues({"a1001": ("1001", tuple(policy.queues)),
                                "a1002": ("1002", ("general",))})
    return EngineConfig(core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05,
                                        rona_pause_s=None),
                        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET),
                        database_url=db_url(tmp_path))


async def _engine_records(engine: Engine) -> dict[str, dict[str, Any]]:
    await engine.writer.drain()
    return {r["call_id"]: r for r in await engine.db.calls()}


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time")
        await asyncio.sleep(0.02)


def _offers(pbx: SimPBX) -> list[str]:
    """The channels that get ``ACD_OFFER`` (set just before each Redirect)."""
    seen: list[str] = []
    pbx.add_event_listener(lambda m: seen.append(m.get("Channel"))
                           if m.event == "VarSet" and m.get("Variable") == "ACD_OFFER"
                           else None)
    return seen


async def test_a_fake_hotline_naming_a_real_channel_never_moves_it(tmp_path: Path) -> None:
    """A peer opens hotlines of its own (uniqueids no channel has) naming
    the channel of a caller talking to an agent and of one waiting: the
    engine's SET VARIABLE of the secret goes to the peer, the named
    channels do not carry it, so neither is a call: each session closed
    after the secret, the core never told, no record; the named channels are
    never given an offer nor redirected, and both real calls are served
    and recorded once."""
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=1.0),
              "1002": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with engine_on_pbx(_two_agents(tmp_path), phones=phones) as (pbx, engine):
        offers = _offers(pbx)
        talking = await pbx.place_call(CallerScript(number="13800000001", keys=["", "1"],
                                                    patience_s=None, key_delay_s=0.02))
        await _until(lambda: (c := engine.core.call(talking.uniqueid)) is not None
                     and c.state is CallState.CONNECTED)
        waiting = await pbx.place_call(CallerScript(number="13800000002", keys=["", "2"],
                                                    patience_s=None, key_delay_s=0.02))
        await _queued(engine, waiting.uniqueid)
        port = engine.agi.port
        fakes = [Peer(port, request("hotline?server=pbx1", f"1.{i}", channel=h.channel))
                 for i, h in enumerate((talking, waiting))]
        for peer in fakes:
            await asyncio.wait_for(peer.closed.wait(), 5)
        assert [p.seen for p in fakes] == [WELCOME, WELCOME]
        assert engine.scripts.fakes == 2 and engine.agi.dropped["refused-fake"] == 2
        assert engine.core.call("1.0") is None and engine.calls.get("1.0") is None
        # the uniqueids were never taken: nothing remembers them as ended
        assert engine.calls.ended_secret("1.0") is None
        results = [await asyncio.wait_for(h.done, 20) for h in (talking, waiting)]
        recs = await _engine_records(engine)
    assert offers == [talking.channel, waiting.channel]  # one offer each, their own
    assert [(r.outcome.value, r.agent, r.requeues) for r in results] == \
        [("talked", "1001", 0), ("talked", "1001", 0)]
    assert {c: r["outcome"] for c, r in recs.items()} == {
        talking.uniqueid: "answered", waiting.uniqueid: "answered"}


def _next_uids(pbx: SimPBX, n: int = 1) -> list[str]:
    """The uniqueids the simulator gives next (``<epoch>.<seq>``, as
    Asterisk: predictable), for this second and the next."""
    seq = copy.copy(pbx.channels._seq)
    now = int(time.time())
    return [f"{t}.{next(seq)}" for _ in range(n) for t in (now, now + 1)][:2 * n]


async def test_a_squatter_on_the_next_uniqueid_does_not_stop_the_real_caller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer opens a hotline under the uniqueid Asterisk gives next and
    stalls (never answers ANSWER).  The real caller's hotline for it is not
    hung up as a second session: it proves the channel its own, the
    squatter's session is closed, and the caller is served and recorded
    once.  A squatter that is quick (answers everything, names a channel
    that is not there) is dropped by itself: nothing recorded, the uniqueid
    free."""
    monkeypatch.setattr(agi_scripts, "GONE_GRACE_S", 0.3)  # (the quick one's wait)
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with engine_on_pbx(_config(tmp_path), phones=phones) as (pbx, engine):
        port = engine.agi.port
        squatters = [Peer(port, request("hotline?server=pbx1", uid), answered=0)
                     for uid in _next_uids(pbx)]
        await _until(lambda: all(p.seen == ["SET"] for p in squatters))
        h = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=None,
                                              key_delay_s=0.02))
        assert h.uniqueid in [p.head.decode().split("agi_uniqueid: ")[1].split("\n")[0]
                              for p in squatters]
        res = await asyncio.wait_for(h.done, 15)
        hit = [p for p in squatters if p.closed.is_set()]
        assert len(hit) == 1 and engine.scripts.squatters == 1
        assert engine.agi.dropped["refused-squatter"] == 1
        # a quick one: dropped once its channel is found missing (no Hangup came)
        uid = _next_uids(pbx)[0]
        quick = Peer(port, request("hotline?server=pbx1", uid))
        await asyncio.wait_for(quick.closed.wait(), 5)
        assert quick.seen == WELCOME
        await _until(lambda: engine.scripts.no_channel == 1, 5)
        assert engine.calls.get(uid) is None and engine.calls.ended_secret(uid) is None
        h2 = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=None,
                                               key_delay_s=0.02))
        res2 = await asyncio.wait_for(h2.done, 15)
        recs = await _engine_records(engine)
        for p in squatters:
            await p.stop()
    assert res.outcome.value == "talked" and res2.outcome.value == "talked"
    assert {c: r["outcome"] for c, r in recs.items()} == {
        h.uniqueid: "answered", h2.uniqueid: "answered"}


async def test_while_ami_cannot_tell_a_call_is_taken_and_proven_before_it_is_moved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AMI cannot prove a new call's channel (the link is down at that
    moment): the call is taken (a caller is not lost to an AMI outage),
    unproven, and proven before its first Setvar or Redirect.  A fake taken
    so, naming a real talking channel, is found out then: ended, and the
    named channel never offered nor moved.  A squatter taken so is replaced
    by the channel's own session, which goes on with the call."""
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=1.5),
              "1002": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with engine_on_pbx(_two_agents(tmp_path), phones=phones) as (pbx, engine):
        offers = _offers(pbx)
        real_prove = engine.scripts.prove
        assert real_prove is not None

        async def ami_down(server: str, channel: str, secret: str,
                           timeout: float) -> tuple[Any, str]:
            return "unknown", "AMI pbx1 is not connected (a test)"

        talking = await pbx.place_call(CallerScript(number="13800000001", keys=["", "1"],
                                                    patience_s=None, key_delay_s=0.02))
        await _until(lambda: (c := engine.core.call(talking.uniqueid)) is not None
                     and c.state is CallState.CONNECTED)
        monkeypatch.setattr(engine.scripts, "prove", ami_down)
        # a fake naming the talking channel: taken, queued in general, offered
        # to a1002; proven first, found out, ended
        fake = Peer(engine.agi.port, request("hotline?server=pbx1", "2.0",
                                             channel=talking.channel))
        await asyncio.wait_for(fake.closed.wait(), 10)
        await _until(lambda: engine.core.call("2.0") is None)
        assert engine.scripts.unproven == 1 and "2.0" not in [
            c.call_id for c in engine.calls.live_calls()]
        # a real caller taken while AMI cannot tell: proven before it is moved
        h = await pbx.place_call(CallerScript(number="13800000003", keys=["", "0"],
                                              patience_s=None, key_delay_s=0.02))
        await _until(lambda: engine.scripts.unproven == 2)
        monkeypatch.setattr(engine.scripts, "prove", real_prove)
        res = await asyncio.wait_for(h.done, 15)
        # a squatter taken while AMI cannot tell, stalled in the IVR's first
        # prompt: the real caller's own session proves it and goes on
        monkeypatch.setattr(engine.scripts, "prove", ami_down)
        uids = _next_uids(pbx)
        squatters = [Peer(engine.agi.port, request("hotline?server=pbx1", uid), answered=3)
                     for uid in uids]
        await _until(lambda: engine.scripts.unproven == 4)
        monkeypatch.setattr(engine.scripts, "prove", real_prove)
        h2 = await pbx.place_call(CallerScript(number="13800000004", keys=["", "0"],
                                               patience_s=None, key_delay_s=0.02))
        res2 = await asyncio.wait_for(h2.done, 15)
        assert engine.scripts.squatters == 1
        talked = await asyncio.wait_for(talking.done, 15)
        for p in squatters:
            await p.stop()
        recs = await _engine_records(engine)
    assert offers.count(talking.channel) == 1  # its own offer only
    assert (talked.outcome.value, res.outcome.value, res2.outcome.value) == \
        ("talked", "talked", "talked")
    assert (res.agent, res2.agent) == ("1002", "1002")
    assert recs[talking.uniqueid]["outcome"] == "answered"
    assert recs[h.uniqueid]["outcome"] == "answered"
    # taken over from the squatter: one record, answered (the caller data
    # are the squatter's: the call was started from its request)
    assert recs[h2.uniqueid]["outcome"] == "answered"
    assert recs["2.0"]["outcome"] == "abandoned"  # taken as a call while AMI was down


# ---------------------------------------------------------- quick: the settings


def _parse(agi: dict[str, Any], **top: Any) -> EngineConfig:
    data = {"flow": str(ROOT / "ivr_flows" / "basic.yaml"),
            "queues": [{"name": q} for q in sorted(FLOW.queues)], "agi": agi, **top}
    return parse_config(data, "acd.yaml")


def test_the_agi_settings_and_their_defaults() -> None:
    cfg = _parse({})
    assert (cfg.agi_allow, cfg.agi_max_connections, cfg.agi_header_timeout_s) == \
        (None, 4096, 5.0)
    assert cfg.agi_peers == ("127.0.0.0/8", "::1", "127.0.0.1")
    cfg = _parse({}, ami={"host": "pbx1.example.net"},
                 servers=[{"name": "pbx2", "ami": {"host": "10.1.2.3"}}])
    assert cfg.agi_peers == ("127.0.0.0/8", "::1", "pbx1.example.net", "10.1.2.3")
    cfg = _parse({"allow": ["10.0.0.0/8", "pbx3", "::1"], "max_connections": 100,
                  "header_timeout_s": 2})
    assert (cfg.agi_peers, cfg.agi_max_connections, cfg.agi_header_timeout_s) == \
        (("10.0.0.0/8", "pbx3", "::1"), 100, 2.0)


@pytest.mark.parametrize(("agi", "message"), [
    ({"allow": []}, "agi.allow: must be a list of addresses"),
    ({"allow": ["10.0.0.0/8", "not a host!"]},
     "agi.allow[1]: 'not a host!' is not an address, a network"),
    ({"max_connections": 0}, "agi.max_connections: must be a whole number from 1 to"),
    ({"max_connections": 1.5}, "agi.max_connections: must be a whole number"),
    ({"header_timeout_s": 0}, "agi.header_timeout_s: must be a number from 0.1 to 300"),
    ({"allowed": ["x"]}, "agi.allowed: unknown key"),
])
def test_bad_agi_settings_are_named(agi: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _parse(agi)


# ------------------------------------------------------------ the live probes


@dataclass
class Probe:
    """One probe's system: the simulator, one ``acd serve``, its database."""

    tmp_path: Path
    load: Load
    extra: dict[str, Any] = field(default_factory=dict)
    pbx: SimPBX = field(init=False)
    engine: EngineProcess = field(init=False)
    database: str = field(init=False)
    rss_kb: list[int] = field(default_factory=list)
    #: the engine's open files, sampled
    fds: list[int] = field(default_factory=list)

    def rss(self) -> int:
        """The engine's resident memory now (KiB)."""
        assert self.engine.proc is not None
        return _status(self.engine.proc.pid, "VmRSS")

    def peak(self) -> int:
        assert self.engine.proc is not None
        return _status(self.engine.proc.pid, "VmHWM")

    def open_files(self) -> int:
        assert self.engine.proc is not None
        try:
            return len(os.listdir(f"/proc/{self.engine.proc.pid}/fd"))
        except OSError:
            return 0


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


async def run_probe(tmp_path: Path, load: Load,
                    attack: Callable[[Probe, list[Any]], Awaitable[None]], *,
                    extra: dict[str, Any] | None = None,
                    scripts: Callable[[int], CallerScript] | None = None
                    ) -> tuple[Probe, list[CallResult], Verdict, str]:
    """Start the simulator and an engine, place ``load.calls`` calls at
    ``load.rate`` with ``attack(probe, handles)`` running beside them from
    the first call until the last has ended; stop the engine once nothing
    is left in progress.  Returns the results, the fault suite's verdict
    and the engine's log."""
    probe = Probe(tmp_path, load, extra or {})
    agi_port = free_port()
    probe.database = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    handles: list[Any] = []
    async with SimPBX(pbx_config(agi_port)) as pbx:
        probe.pbx = pbx
        for ext, phone in load.phones().items():
            pbx.add_phone(ext, phone)
        cfg = engine_yaml(ami_port=pbx.ami_port, agi_port=agi_port, database=probe.database,
                          agents=load.agents, extra=probe.extra)
        probe.engine = EngineProcess(tmp_path, "engine", cfg)
        try:
            probe.engine.start()
            await probe.engine.serving()
            probe.rss_kb.append(probe.rss())
            stop = asyncio.Event()

            async def sample() -> None:
                while not stop.is_set():
                    probe.rss_kb.append(probe.rss())
                    probe.fds.append(probe.open_files())
                    await asyncio.sleep(0.25)

            sampler = asyncio.ensure_future(sample())
            attacker = asyncio.ensure_future(attack(probe, handles))
            for i in range(load.calls):
                handles.append(await pbx.place_call((scripts or load.script)(i)))
                await asyncio.sleep(load.rng.expovariate(load.rate))
            _, pending = await asyncio.wait([h.done for h in handles], timeout=60)
            assert not pending, f"{len(pending)} calls still going after 60 s"
            attacker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await attacker
            # the fake calls an attack made are found gone and recorded
            await _nothing_in_progress(probe.database, 20)
            stop.set()
            await sampler
            probe.rss_kb.append(probe.rss())
            probe.rss_kb.append(probe.peak())
        finally:
            await stop_all(probe.engine)
            probe.engine.kill_quietly()
    results = [h.done.result() for h in handles]
    log = probe.engine.log_path.read_text(encoding="utf-8", errors="replace")
    v = await verdict(results, probe.database, log)
    return probe, results, v, log


async def _nothing_in_progress(database: str, timeout: float) -> None:
    db = Database(database)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not await db.live_calls():
                return
            await asyncio.sleep(0.25)
    finally:
        await db.dispose()


async def _records(database: str) -> dict[str, dict[str, Any]]:
    db = Database(database)
    try:
        return {r["call_id"]: r for r in await db.calls()}
    finally:
        await db.dispose()


def logged(log: str, needle: str) -> tuple[int, int]:
    """(lines, occurrences) of a rate-limited kind of line in the log: a
    line that says "(and N more like it ...)" stands for itself and N more."""
    lines = occurrences = 0
    for line in log.splitlines():
        if needle not in line:
            continue
        lines += 1
        m = re.search(r"\(and ([\d,]+) more like it", line)
        occurrences += 1 + (int(m.group(1).replace(",", "")) if m else 0)
    return lines, occurrences


def check(name: str, probe: Probe, results: list[CallResult], v: Verdict,
          figures: str) -> None:
    """The fault suite's checks on the real calls, and the figures printed."""
    print(f"\n[probe] {name}: {len(results)} calls, {v.records} records in all "
          f"({v.outcomes}), engine memory {probe.rss_kb[0] / 1024:.0f} MiB at start, "
          f"peak {max(probe.rss_kb) / 1024:.0f} MiB; {figures}")
    assert not v.problems(), "\n".join(v.problems())
    assert v.never_reached == 0
    assert v.outcomes.get("answered", 0) >= len(results) * 0.8


@pytest.mark.slow
async def test_probe_hijack_attempts_are_refused_and_every_call_is_served(
        tmp_path: Path) -> None:
    load = Load(calls=100, rate=15, agents=10, talk_s=(0.5, 1.5), impatient_share=0.0,
                seed=11)
    tries: list[tuple[str, str, list[str], bool]] = []  # script, how, sent, still live
    fakes: list[tuple[str, list[str]]] = []  # the real channel a fake hotline named, sent
    squatters: dict[str, Peer] = {}  # by the uniqueid it squats
    offers: list[str] = []
    #: the kind of try on its way when the attack was stopped (the engine
    #: may have logged it, the probe has not counted it)
    cut: list[str] = [""]
    rng = random.Random(5)

    async def attack(probe: Probe, handles: list[Any]) -> None:
        port = probe.engine.agi_port
        probe.pbx.add_event_listener(
            lambda m: offers.append(m.get("Channel"))
            if m.event == "VarSet" and m.get("Variable") == "ACD_OFFER" else None)
        scripts = ["requeue?status=NOANSWER&offer=1&server=pbx1", "resume?server=pbx1",
                   "fallback?kind=callback&server=pbx1", "hotline?server=pbx1"]
        last_squat = 0.0
        while True:
            live = [h for h in handles if not h.done.done() and h.agi_commands]
            ended = [h for h in handles if h.done.done()]
            if time.monotonic() - last_squat > 0.3:
                # the next uniqueids Asterisk gives (a caller's, or an agent
                # leg's), held by sessions that stall until the engine (or
                # the test's end) closes them
                last_squat = time.monotonic()
                for uid in set(_next_uids(probe.pbx)) - squatters.keys():
                    squatters[uid] = Peer(port, request("hotline?server=pbx1", uid),
                                          answered=0)
            if not live:
                await asyncio.sleep(0.02)
                continue
            if rng.random() < 0.3:
                # a hotline of the attacker's own naming a real channel
                # (talking, ringing or waiting)
                h = rng.choice(live)
                cut[0] = "fake"
                sent = await raw_session(port, request(
                    "hotline?server=pbx1", f"777.{len(fakes)}", channel=h.channel))
                fakes.append((h.channel, sent))
                cut[0] = ""
                continue
            # mostly calls in progress; some that have just ended (their ids
            # must not start a call of the attacker's either)
            h = rng.choice(ended if ended and rng.random() < 0.2 else live)
            script = rng.choice(scripts)
            how = rng.choice(["wrong", "empty", "none"])
            args = {"wrong": (secrets.token_urlsafe(16),), "empty": ("",), "none": None}[how]
            cut[0] = "try"
            sent = await raw_session(port, request(script, h.uniqueid, args=args))
            tries.append((script, how, sent, not h.done.done()))
            cut[0] = ""
            await asyncio.sleep(0.01)

    try:
        probe, results, v, log = await run_probe(tmp_path, load, attack)
    finally:  # the ones still stalled: closed once the engine is gone
        for p in squatters.values():
            await p.stop()
    live_tries = [t for t in tries if t[3]]

    def welcome(sent: list[str]) -> bool:
        return [c.split(" ")[0] for c in sent] == WELCOME

    # a hotline for a live call is hung up (that session: HANGUP; one that
    # came while the call's own was being proven, after trying to prove
    # its own), for an ended one closed; the others are closed, asked for
    # the secret at most
    hijacked = [t for t in tries if t[2] not in ([], ["GET VARIABLE ACD_CALL_SECRET"])
                and not (t[0].startswith("hotline") and t[2][-1:] == ["HANGUP"]
                         and (len(t[2]) == 1 or welcome(t[2][:-1])))]
    lines, refusals = logged(log, REFUSED)
    # (a squatter that came after the call it squats was proven is hung up
    # as a second session too)
    late_squats = sum(1 for p in squatters.values() if p.seen == ["HANGUP"])
    hotlines = logged(log, "which has ended; session closed")[1] \
        + logged(log, "a second hotline session")[1] - late_squats
    # the fakes naming real channels: each sent the welcome only, then
    # closed as no call (its channel is not the session's, or was gone)
    not_welcomed = [f for f in fakes if not welcome(f[1])]
    no_call = logged(log, "not a call")
    # squatters on a real caller's uniqueid (the others squat agents' legs)
    hits = [r.uniqueid for r in results if r.uniqueid in squatters]
    took = logged(log, "took the call; this one closed")[1]
    check("hijack", probe, results, v,
          f"{len(tries)} hijack tries ({len(live_tries)} on calls still live after the "
          f"try, the others on calls just ended), {len(hijacked)} got in; {refusals} "
          f"refusals logged in {lines} lines; {len(fakes)} fake hotlines naming real "
          f"channels ({no_call[1]} found no call, in {no_call[0]} lines), "
          f"{len(not_welcomed)} went further; {len(squatters)} squatters on the next "
          f"uniqueids, {len(hits)} of them on a real caller's, each replaced by the "
          f"caller's own session ({took} logged)")
    assert len(live_tries) >= 100 and len(tries) - len(live_tries) >= 20
    assert hijacked == []
    assert refusals + hotlines - len(tries) in ((0, 1) if cut[0] == "try" else (0,))
    assert lines <= 3
    assert len(fakes) >= 100 and not_welcomed == []
    assert no_call[1] - len(fakes) in ((0, 1) if cut[0] == "fake" else (0,))
    assert no_call[0] <= 4  # (two kinds: the channel is not the session's, or gone)
    assert len(hits) >= 3 and took == len(hits)
    recs = await _records(probe.database)
    assert len(recs) == len(results)  # no call of the attacker's under any id
    assert all(recs[r.uniqueid]["outcome"] == "answered" for r in results)
    # no channel was given an offer (and redirected) but for its own calls
    assert sorted(offers) == sorted(r.channel for r in results for _ in r.dial_statuses)


@pytest.mark.slow
async def test_probe_caller_names_that_are_not_utf8_are_kept_and_recorded(
        tmp_path: Path) -> None:
    load = Load(calls=100, rate=15, agents=12, talk_s=(0.5, 1.5), seed=12)
    names = ["张三".encode("gbk"), "José Müller".encode("latin-1"), b"\xff\xfe\x00A",
             "王小明".encode()[:-1]]  # GBK, Latin-1, garbage, a cut character

    def script(i: int) -> CallerScript:
        raw = names[i % len(names)] if i % 2 == 0 else "张三".encode()
        return replace(load.script(i), name=raw.decode("utf-8", "surrogateescape"))

    async def attack(probe: Probe, handles: list[Any]) -> None:
        await asyncio.Event().wait()  # the names are the attack

    probe, results, v, log = await run_probe(tmp_path, load, attack, scripts=script)
    recs = await _records(probe.database)
    odd = [recs[r.uniqueid]["caller_name"] for r in results[::2] if r.uniqueid in recs]
    check("non-UTF-8 names", probe, results, v,
          f"{len(odd)} calls with names that are not UTF-8 recorded, e.g. {odd[:2]!r}")
    assert len(odd) == 50 and all("\ufffd" in n for n in odd)
    assert all(recs[r.uniqueid]["caller_name"] == "张三" for r in results[1::2])
    # the one header dropped is the probe's own check that FastAGI is open
    assert logged(log, "bad request header")[1] == 1


@pytest.mark.slow
async def test_probe_a_520_flood_is_cut_and_the_calls_go_on(tmp_path: Path) -> None:
    load = Load(calls=100, rate=15, agents=12, talk_s=(0.5, 1.5), seed=13)
    floods: list[int] = []  # bytes each flood session got to send

    async def flood(probe: Probe, n: int) -> None:
        k = 0
        body = b"Usage: ANSWER  (a very helpful text that never ends)\n" * 1000
        while True:
            k += 1
            r, w = await asyncio.open_connection("127.0.0.1", probe.engine.agi_port)
            sent = 0
            try:
                w.write(request("hotline?server=pbx1", f"6660000{n:03d}.{k}"))
                await r.readline()  # ANSWER
                w.write(b"520-Invalid command syntax.  Proper usage follows:\n")
                while sent < 1_000_000:  # 60 times the bound: as good as never-ending
                    w.write(body)
                    await w.drain()
                    sent += len(body)
            except ConnectionError:
                pass
            finally:
                w.close()
                floods.append(sent)
            await asyncio.sleep(0.2)

    async def attack(probe: Probe, handles: list[Any]) -> None:
        await asyncio.gather(*(flood(probe, n) for n in range(8)))

    probe, results, v, log = await run_probe(tmp_path, load, attack)
    recs = await _records(probe.database)
    fakes = [c for c in recs if c.startswith("6660000")]
    lines, cut = logged(log, "520 usage body")
    growth = max(probe.rss_kb) - probe.rss_kb[0]
    check("520 flood", probe, results, v,
          f"{len(floods)} flood sessions, {sum(floods) / 1e6:.0f} MB offered, "
          f"{cut} cut (in {lines} log lines); {len(fakes)} fake calls recorded; "
          f"memory grew {growth / 1024:.0f} MiB")
    assert len(floods) >= 20 and cut >= len(floods) - 8  # the ones cut by the probe's end
    assert lines <= 3
    # cut before their channel was proven: no call, so no record (nor a
    # uniqueid taken from anyone)
    assert fakes == []
    assert growth < 64 * 1024


#: the idle peers: a process of its own holding ``total`` connections to
#: the engine's FastAGI port, opening a new one for each the engine closes
#: (at most ``rate`` a second), for ``hold_s`` or until SIGTERM; prints what
#: it saw as JSON.  Its open-files limit is raised as far as the hard one.
IDLE_PEERS = r"""
import errno, json, resource, select, signal, socket, sys, time
port, total = int(sys.argv[1]), int(sys.argv[2])
hold_s, rate = float(sys.argv[3]), float(sys.argv[4])
# from 16 loopback addresses of this process's own (127.<k>.0.1-16): each
# has its own local ports, so a connect stays cheap (from one address, once
# most of its ports are taken, every connect searches the port range)
sources = [f"127.{int(sys.argv[5])}.0.{i}" for i in range(1, 17)]
NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # the port chosen at connect
need = total + 100
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < need:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
ep = select.epoll()
socks = {}
st = {"opened": 0, "closed_by_engine": 0, "failed": 0, "max_open": 0}
def open_one():
    s = socket.socket()
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_IP, NO_PORT, 1)
    s.bind((sources[st["opened"] % len(sources)], 0))
    err = s.connect_ex(("127.0.0.1", port))
    if err not in (0, errno.EINPROGRESS):
        s.close(); st["failed"] += 1; return
    socks[s.fileno()] = s
    ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    st["opened"] += 1
t0 = time.monotonic()
end = t0 + hold_s
allowance = float(total)  # the first 'total' at once, then 'rate' a second
last = t0
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
print(json.dumps({"ready": True}), flush=True)
while time.monotonic() < end and not stopping:
    now = time.monotonic()
    allowance = min(allowance + (now - last) * rate, float(total))
    last = now
    # a round opens up to 'total': the stop is looked at before each
    # connect, so a SIGTERM is answered at once
    while len(socks) < total and allowance >= 1 and not stopping:
        open_one(); allowance -= 1
    st["max_open"] = max(st["max_open"], len(socks))
    for fd, _ in ep.poll(0.01):
        s = socks.pop(fd, None)
        if s is not None:
            ep.unregister(fd); s.close(); st["closed_by_engine"] += 1
st["open_at_end"] = len(socks)
print(json.dumps(st), flush=True)
"""


@pytest.mark.slow
async def test_probe_20k_idle_connections_while_calls_flow(tmp_path: Path) -> None:
    total = 20_000
    # the peers are spread over processes that each fit their open-files limit
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per = min(10_000, hard - 100) if hard != resource.RLIM_INFINITY else 10_000
    if per < 1000:
        pytest.skip(f"the open-files hard limit is {hard}: too low to hold {total} "
                    "connections in a few processes (raise it: ulimit -Hn)")
    load = Load(calls=100, rate=15, agents=12, talk_s=(0.5, 1.5), seed=14)
    seen: dict[str, Any] = {}

    async def peers(probe: Probe, n: int, net: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", IDLE_PEERS, str(probe.engine.agi_port), str(n), "25",
            str(3000 * n // total), str(net), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            ready = await proc.stdout.readline()
            assert ready, (await proc.stderr.read()).decode()
            await proc.wait()
        finally:
            if proc.returncode is None:  # the calls are over: it says what it saw
                proc.send_signal(signal.SIGTERM)
            try:
                out = await asyncio.wait_for(proc.stdout.read(), 10)
            except TimeoutError:  # said, not left behind holding its connections
                out = b"no answer to SIGTERM within 10 s"
                proc.kill()
            await proc.wait()
            try:
                for k, v in json.loads(out.decode().splitlines()[-1]).items():
                    seen[k] = seen.get(k, 0) + v
            except (ValueError, IndexError):
                seen.setdefault("errors", []).append(
                    (out.decode()[-300:], (await proc.stderr.read()).decode()[-1000:]))

    async def attack(probe: Probe, handles: list[Any]) -> None:
        sizes = [per] * (total // per) + ([total % per] if total % per else [])
        tasks = [asyncio.ensure_future(peers(probe, n, net))
                 for net, n in enumerate(sizes, start=1)]
        try:
            await asyncio.wait(tasks)  # cancelled, it leaves them to the finally
        finally:
            for t in tasks:  # each says what it saw (once cancelled, not twice)
                t.cancel()
            for got in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(got, Exception):  # a peer process that failed: said
                    seen.setdefault("errors", []).append(repr(got))

    probe, results, v, log = await run_probe(tmp_path, load, attack)
    evicted = logged(log, "to make room")
    timed_out = logged(log, "no complete request header")
    refused = logged(log, "connections open, the most")
    flaps = [line for line in log.splitlines()
             if "AMI pbx1: connection lost" in line or "no answer to Ping" in line]
    growth = max(probe.rss_kb) - probe.rss_kb[0]
    # callers whose FastAGI connection failed (the backlog full of idle
    # peers) and who got in through acd-recover's resume instead
    late = sum(1 for r in results if any(s.startswith("resume") for s in r.agi_scripts))
    check("20k idle connections", probe, results, v,
          f"idle peers: {seen}; evicted {evicted[1]} ({evicted[0]} lines), header timeouts "
          f"{timed_out[1]} ({timed_out[0]} lines), refused over the cap {refused[1]}; "
          f"AMI link lost {len(flaps)} times; memory grew {growth / 1024:.0f} MiB; "
          f"the engine's open files at most {max(probe.fds)}; {late} callers got in only "
          "through acd-recover")
    assert "errors" not in seen and seen["max_open"] >= total - 100
    assert flaps == []
    assert evicted[0] <= 3 and timed_out[0] <= 3 and refused[0] <= 3
    assert evicted[1] + timed_out[1] > 0
    # agi.max_connections, and what fastagi.FD_RESERVE keeps for the rounds
    # of accepts not yet looked at or closed and the engine's own files
    assert max(probe.fds) <= 4096 + FD_RESERVE
    assert growth < 256 * 1024
