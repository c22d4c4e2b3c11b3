"""Delivers the SMS outbox through a transport, with retries and backoff.

One owned task.  It reads due rows (``queued``, past ``send_after`` and
``next_attempt_at``) in id order, hands each to the transport, and records
the outcome: ``sent`` with the gateway's message id; a retry later with
exponential backoff (the gateway is down or busy); ``failed`` when refused
for good or older than ``max_age_h``.  Everything lives in the database, so
an engine restart resumes where it stopped and the gateway being down loses
nothing.

Exactly once: a row goes from ``queued`` to ``sent`` only once (the update
is conditional on the state); the transport is given the row id as an
idempotency key, so a gateway can drop a repeat if the engine died between
the gateway's acceptance and the update (documented in docs/sms.md).

Receipts and replies come back through the transport: a receipt marks the
row ``delivered`` (or ``failed``); a reply STOP/TD/退订 puts the number on
the opt-out list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from acd.adapters.sms_store import SmsStore
from acd.logs import Limited, brief, private, scrubbed
from acd.sms.policy import is_opt_out
from acd.sms.transport import (
    DeliveryReceipt,
    InboundSms,
    OutgoingSms,
    PermanentSmsError,
    SmsTransport,
    TransportError,
)

#: receipts kept while their SMS is not yet marked sent (the newest)
EARLY_RECEIPTS = 10_000
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SenderConfig:
    sender: str = ""
    #: the shortest wait between two reads of the outbox
    poll_s: float = 1.0
    #: the longest: with nothing queued, the outbox is read again after this
    #: long (a row this engine queues wakes the sender at once; this is for
    #: rows put there otherwise)
    idle_s: float = 60.0
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    max_age_h: float = 48.0  # a queued SMS older than this is failed, not sent late
    batch: int = 100


def retry_delay(config: SenderConfig, attempts: int) -> float:
    """The wait before an SMS's next try after its ``attempts``-th failed:
    ``backoff_s`` doubling with each attempt, capped at ``backoff_max_s``.

    Not :class:`acd.adapters.backoff.Backoff`, though the waits double with
    a cap as there: that is one peer's reconnect schedule, a counter in
    memory that a success resets.  Here each SMS has its own schedule,
    computed from the attempts stored with its row and kept as its
    ``next_attempt_at``: it survives a restart, and one SMS's failures do
    not lengthen another's wait.  The exponent is bounded so that a row
    retried for days (``max_age_h`` allows 30) cannot overflow a float."""
    return min(config.backoff_s * 2.0 ** min(attempts - 1, 64), config.backoff_max_s)


@dataclass(slots=True)
class SenderStats:
    sent: int = 0
    retries: int = 0
    failed: int = 0
    receipts: int = 0
    opt_outs: int = 0


class SmsSender:
    def __init__(self, store: SmsStore, transport: SmsTransport,
                 config: SenderConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.transport = transport
        self.config = config or SenderConfig()
        self.clock = clock
        self.stats = SenderStats()
        self._task: asyncio.Task[None] | None = None
        #: set when this engine's SMS rows are committed (:meth:`wake`)
        self._woken = asyncio.Event()
        #: receipts that arrived before their `sent` row was stored (the
        #: gateway can be faster than our database): applied after mark_sent.
        #: Duplicates and unknown ids land here too: the oldest go first.
        self._early: OrderedDict[str, DeliveryReceipt] = OrderedDict()
        #: an outbox that cannot be read, a gateway down, refusals: one line
        #: a minute of each kind, with a count
        self.limited = Limited(60.0)

    async def start(self) -> None:
        await self.transport.start(self._on_receipt, self._on_inbound)
        self.store.db.on_sms_written = self.wake  # SMS queued by this process
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sms-sender")

    async def stop(self) -> None:
        if self.store.db.on_sms_written == self.wake:
            self.store.db.on_sms_written = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.transport.close()
        self.limited.flush(log)

    def wake(self) -> None:
        """SMS rows were committed to the outbox: read it now (not at the
        next poll).  Called by the record writer, on the event loop."""
        self._woken.set()

    async def _run(self) -> None:
        cfg = self.config
        while True:
            self._woken.clear()
            wait = cfg.poll_s
            try:
                if await self.send_due():
                    continue  # a full batch: more may be due
                wait = await self._idle_wait()
            except Exception as exc:
                # the type and first line (a database error's next lines quote
                # the statement's parameters); the traceback at DEBUG
                if self.limited.error(log, "outbox", "SMS sender: reading the outbox failed: "
                                      "%s; again in %.1f s", brief(exc), cfg.poll_s):
                    log.debug("SMS sender: reading the outbox failed", exc_info=exc)
            await asyncio.sleep(cfg.poll_s)
            if wait > cfg.poll_s:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait - cfg.poll_s):
                        await self._woken.wait()

    async def _idle_wait(self) -> float:
        """How long to wait before reading the outbox again: until its
        earliest queued row falls due, between ``poll_s`` and ``idle_s``."""
        cfg = self.config
        due = await self.store.next_due()
        if due is None:
            return max(cfg.idle_s, cfg.poll_s)
        return min(max(due - self.clock(), cfg.poll_s), max(cfg.idle_s, cfg.poll_s))

    async def send_due(self) -> bool:
        """Send what is due now; True if a full batch was found (more may wait)."""
        cfg = self.config
        now = self.clock()
        rows = await self.store.due(now, cfg.batch)
        for row in rows:
            attempts = row.attempts + 1
            if now - row.created_at.timestamp() > cfg.max_age_h * 3600:
                await self.store.mark_failed(row.id, f"expired after {cfg.max_age_h:g} h "
                                             f"({row.reason or 'never sent'})", attempts)
                self.stats.failed += 1
                continue
            try:
                message_id = await self.transport.send(
                    OutgoingSms(row.id, row.to, row.text, cfg.sender))
            except PermanentSmsError as exc:
                await self.store.mark_failed(row.id, f"refused: {exc}", attempts)
                self.stats.failed += 1
                self.limited.warning(log, "refused", "SMS %d to %s refused: %s", row.id,
                                     private(row.number), scrubbed(exc, row.number, row.to))
            except TransportError as exc:
                delay = retry_delay(cfg, attempts)
                await self.store.mark_retry(row.id, str(exc), self.clock() + delay, attempts)
                self.stats.retries += 1
                self.limited.info(log, "retry", "SMS %d to %s not sent (%s); retry in %.0f s",
                                  row.id, private(row.number),
                                  scrubbed(exc, row.number, row.to), delay)
                return False  # the gateway is down: do not hammer it with the rest
            else:
                if await self.store.mark_sent(row.id, message_id, self.transport.name,
                                              self.clock(), attempts):
                    self.stats.sent += 1
                    early = self._early.pop(message_id, None)
                    if early is not None:
                        await self._on_receipt(early)
        return len(rows) == cfg.batch

    async def _on_receipt(self, receipt: DeliveryReceipt) -> None:
        if await self.store.mark_receipt(receipt.message_id, receipt.delivered,
                                         receipt.status, self.clock()):
            self.stats.receipts += 1
        else:
            self._early[receipt.message_id] = receipt
            self._early.move_to_end(receipt.message_id)
            if len(self._early) > EARLY_RECEIPTS:
                self._early.popitem(last=False)

    async def _on_inbound(self, msg: InboundSms) -> None:
        if is_opt_out(msg.text):
            if await self.store.opt_out(msg.sender, "reply", self.clock()):  # any form
                self.stats.opt_outs += 1
                log.info("%s replied %r: opted out of SMS", private(msg.sender),
                         private(msg.text))
        else:
            self.limited.info(log, "inbound", "SMS from %s ignored: %r", private(msg.sender),
                              private(msg.text[:40]))
