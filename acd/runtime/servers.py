"""One Asterisk server as the engine drives it: its AMI client, the events
of its channels, the Redirects, and the start-up rebuild and
reconciliation of its calls (docs/continuity.md).  The engine holds one
:class:`PbxServer` per server in ``acd.yaml`` (``server``/``ami``, then
``servers:``), all over one core: a server that goes down ends only its
own calls."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from acd.adapters.ami import AmiClient, AmiConfig, AmiError
from acd.adapters.storage import Database
from acd.core.center import ContactCenter
from acd.core.model import CallState
from acd.logs import Limited
from acd.runtime.ami_events import AMI_EVENTS, AmiEvents, OnDevice
from acd.runtime.calls import CallRegistry, CallReports
from acd.runtime.moves import PbxMoves
from acd.runtime.rebuild import Rebuild, RebuildReport, Submit

log = logging.getLogger(__name__)


class PbxServer:
    """AMI client, AMI events, moves and rebuild of one Asterisk server."""

    def __init__(self, name: str, ami_config: AmiConfig, *, core: ContactCenter,
                 submit: Submit, calls: CallRegistry, reports: CallReports, db: Database,
                 connect_context: str, path_contexts: Sequence[str],
                 clock: Callable[[], float], on_device: OnDevice,
                 offer_live: Callable[[str, int], bool],
                 spawn: Callable[[Coroutine[Any, Any, None], str], None]) -> None:
        """``spawn(coro, name)``: the engine's owned tasks."""
        self.name = name
        self.calls = calls
        self.core = core
        self.reports = reports
        self.spawn = spawn
        self.rebuild = Rebuild(core, submit, calls, reports, db, server=name,
                               connect_context=connect_context, clock=clock,
                               path_contexts=path_contexts)
        self.events = AmiEvents(calls, reports, on_device, server=name,
                                caller_gone=self._caller_gone)
        if ami_config.wanted_events is None:
            ami_config = dataclasses.replace(ami_config, wanted_events=AMI_EVENTS)
        self.ami = AmiClient(ami_config, self.events.on_event, self._resync, name=name)
        self.moves = PbxMoves(self.ami, calls, reports, connect_context,
                              settle=self._settle, offer_live=offer_live)
        #: the start-up rebuild ran for this server (one unreachable at start
        #: runs it at its first connect instead)
        self.scanned = False
        #: resyncs failing at every reconnect of a flapping link: one line a minute
        self.limited = Limited(60.0)

    def flush_logs(self) -> None:
        """At stop: the lines held back by this server's rate limits, with their counts."""
        for limited in (self.limited, self.moves.limited, self.rebuild.limited,
                        self.events.odd):
            limited.flush()

    def _caller_gone(self, call_id: str, cause: int) -> None:
        """A caller's Hangup.  If the core still has the call ringing, the
        answer may have been missed (its DialEnd lost with a link): AstDB
        says, before the call is ended (an abandon otherwise)."""
        core_call = self.core.call(call_id)
        if core_call is not None and core_call.state is CallState.OFFERED:
            self.spawn(self.rebuild.gone(call_id, self.ami.send_list, cause),
                       f"gone-{call_id}")
            return
        self.reports.caller_gone(call_id, cause)

    async def _resync(self) -> None:
        """After every AMI (re)connect: the live channels settle what was
        missed while the link was down (calls gone, offers answered or not)."""
        if not self.scanned:
            report = RebuildReport()
            try:
                found = await self.rebuild.scan(self.ami.send_list, report)
                await self.rebuild.finish(found, self.ami.send, report)
            except AmiError as exc:
                self.limited.warning(log, "rebuild", "AMI %s: start-up rebuild failed (%s); "
                                     "again at the next connect", self.name, exc)
                return
            self.scanned = True
            log.info("AMI %s: first connect; found %s", self.name, report)
            return
        known = self.calls.legs(self.name)
        offers = self.rebuild.offers()
        try:
            items = await self.ami.send_list("CoreShowChannels")
        except AmiError as exc:
            self.limited.warning(log, "resync", "AMI %s: resync after connect failed: %s",
                                 self.name, exc)
            return
        await self.rebuild.reconcile(items, known, self.ami.send_list, offers)

    async def _settle(self, call_id: str) -> None:
        """A Redirect whose answer never came: the live channels say whether
        it moved the caller."""
        core_call = self.rebuild.core.call(call_id)
        offer = core_call.offer_id if core_call is not None else None
        items = await self.ami.send_list("CoreShowChannels")
        await self.rebuild.settle_from(call_id, items, self.ami.send_list, offer)
