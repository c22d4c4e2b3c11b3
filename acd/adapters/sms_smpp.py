"""SMS over SMPP 3.4, straight to an operator's SMSC (smpp34, a Rust-backed asyncio client).

What smpp34 gives us: the TCP session, framing, sequence numbers and the
response window, ``enquire_link`` every 30 s (its fixed default: the Python
API does not expose the timer; an unanswered one ends the session), and the
``deliver_sm_resp`` for every ``deliver_sm`` (sent by its core as soon as the
PDU is queued for us; ``ESME_RMSGQFUL`` when that queue is full, so the SMSC
retries).  What we add:

* one transceiver bind at a time, supervised: on a lost session (the SMSC went
  away, unbound us, stopped answering) or a failed bind we bind again with
  exponential backoff, for as long as the transport runs;
* the encoding and the split, by the pure codec :mod:`acd.protocols.smpp`
  (GSM 7-bit when every character fits, else UCS-2; long texts as concatenated
  parts behind a UDH, 153 septets or 67 UTF-16 units a part).  The reference is
  ``sms_id & 0xFF``: the same for every part of a message and for every retry of
  it (a handset then completes a message from a retry's parts), different for
  consecutive messages;
* ``send`` submits the parts in order, each under ``submit_timeout_s``, and
  returns the message id of the FIRST part.  It raises
  :class:`~acd.sms.transport.TransportError` when not bound, on a timeout or a
  broken session, and on a temporary status (``ESME_RTHROTTLED``,
  ``ESME_RMSGQFUL``, ``ESME_RSYSERR``, unknown/vendor statuses...);
  :class:`~acd.sms.transport.PermanentSmsError` on a status that says this
  message will never go (``ESME_RINVDSTADR``, bad TON/NPI, bad length...).
  When a later part fails, the parts already accepted stay sent: the retry
  resends the whole message under the same reference;
* the destination address in the form its ``dest_ton`` says
  (:func:`destination`): TON 1 (international) the E.164 digits without
  ``+`` (``8613800138000``); TON 0 (unknown), 2 (national) and the others
  the number as dialled in the configured country (``13800138000``,
  ``02012345678``; under TON 0 a foreign number as ``00`` and its digits).
  A number that the TON cannot carry (a foreign one under TON 2, one that is
  not a full number under TON 1) is refused with
  :class:`~acd.sms.transport.PermanentSmsError`, never sent in a form the
  SMSC would read as another number;
* receipts: ``registered_delivery=1`` on EVERY part.  A ``deliver_sm`` with
  ``esm_class`` 0x04 (or an intermediate notification, 0x20) is a receipt: the id
  from the ``receipted_message_id`` TLV, else the ``id:`` of the receipt text; the
  state from the ``message_state`` TLV, else ``stat:``.  Non-final states
  (ENROUTE, ACCEPTD...) are dropped.  For a message of several parts, one
  :class:`DeliveryReceipt` under the first part's id: delivered when every part
  is, failed at the first part that failed.  The part ids of the last
  ``receipt_memory`` parts are kept in memory for that; a receipt for an id not
  (or no longer) known, e.g. after a restart, is passed on under its own id.
  SMSCs that answer ``submit_sm`` with a hex id and put it in the receipt in
  decimal (a common quirk) are handled by ``msg_id_bases=(16, 10)``: both
  spellings are then turned into decimal, which is also what ``send`` returns;
* every other ``deliver_sm`` is an MO message (a caller replying STOP, TD,
  退订) and becomes :class:`InboundSms`; its text is decoded by ``data_coding``
  (GSM 7-bit, ASCII, Latin-1, UCS-2) and concatenated MO parts are reassembled.

The ``deliver_sm_resp`` goes out before our callback has run, so a receipt
or a reply is lost if the process dies in between (at most once, as with
every SMPP client that acks from its reader).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import smpp34

from acd.adapters.backoff import Backoff
from acd.core.numbers import DEFAULT_COUNTRY, dialled, is_e164, normalize
from acd.logs import Limited, brief
from acd.protocols.smpp import (
    DELIVERED_STATES,
    ESM_UDHI,
    NON_FINAL_STATES,
    PERMANENT_STATUSES,
    TLV_MESSAGE_PAYLOAD,
    decode_short_message,
    is_receipt,
    normalize_id,
    parse_receipt,
    parse_udh,
    split_message,
    status_name,
)
from acd.sms.transport import (
    DeliveryReceipt,
    InboundSms,
    OnInbound,
    OnReceipt,
    OutgoingSms,
    PermanentSmsError,
    TransportError,
)

log = logging.getLogger(__name__)

# -- receipts of sent messages ---------------------------------------------------


@dataclass(slots=True)
class _Group:
    """One sent message's parts, for turning their receipts into one."""

    first_id: str
    parts: int
    delivered: set[str] = field(default_factory=set)
    done: bool = False


# -- destination addresses ---------------------------------------------------------

TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL = 0, 1, 2


def destination(number: str, ton: int, country: str = DEFAULT_COUNTRY) -> str:
    """``number`` (any form; the outbox gives it as dialled in ``country``) as
    the ``destination_addr`` of a ``submit_sm`` with ``dest_addr_ton`` ``ton``.

    TON 1: the E.164 digits without ``+`` (``8613800138000``).  TON 2: the
    national form in ``country`` (``13800138000``, ``02012345678``).  TON 0
    and the others: the number as dialled in ``country``
    (:func:`acd.core.numbers.dialled`: national, a foreign number as
    ``0016502530000``).  Raises :class:`~acd.sms.transport.PermanentSmsError`
    for a number the TON cannot carry: a foreign number (or one without a
    national form here) under TON 2, one that is not a full international
    number under TON 1.
    """
    one = normalize(number, country)
    if ton == TON_INTERNATIONAL:
        if not is_e164(one):
            raise PermanentSmsError(
                f"{number!r} is not a full international number, which dest_ton 1 "
                "(international) needs")
        return one[1:]
    form = dialled(one, country)
    if ton == TON_NATIONAL and is_e164(one) and form.startswith("00"):
        what = ("a foreign number" if not one.startswith("+" + country)
                else "a number without a national form here")
        raise PermanentSmsError(
            f"{one} is {what} (country code {country}); dest_ton 2 (national) cannot "
            "carry it: set sms.smpp.dest_ton to 0 or 1 to reach it")
    return form


# -- configuration -------------------------------------------------------------

BindMode = Literal["transceiver", "transmitter"]


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    service_type: str = ""
    source_addr: str = ""  # default sender when OutgoingSms.sender is empty
    # TON/NPI of the sender; None: alphanumeric sender -> 5/0, digits -> 0/1
    source_ton: int | None = None
    source_npi: int | None = None
    # TON of the destination, which decides its form (see `destination`): 0 unknown
    # (the default, as acd.yaml's: the national form, foreign numbers as 00...),
    # 1 international (E.164 digits without '+'), 2 national (national form only)
    dest_ton: int = TON_UNKNOWN
    dest_npi: int = 1  # ISDN/E.164, sent as configured
    bind: BindMode = "transceiver"  # transmitter: no receipts, no replies
    registered_delivery: bool = True  # ask for a receipt on every part
    submit_timeout_s: float = 10.0  # per part, submit_sm -> submit_sm_resp
    connect_timeout_s: float = 10.0  # TCP connect + bind
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    liveness_check_s: float = 1.0  # how often the session task is checked
    window: int = 10  # submit_sm in flight at once (smpp34's window)
    max_submits_per_s: float | None = None  # our own throttle; None: as fast as the window
    extra_permanent_statuses: frozenset[int] = frozenset()  # vendor codes that mean "never"
    # (base of submit_sm_resp ids, base of receipt ids), e.g. (16, 10); None: ids as they come
    msg_id_bases: tuple[int, int] | None = None
    receipt_memory: int = 50_000  # part ids kept for receipt aggregation

    def __post_init__(self) -> None:
        if self.bind not in ("transceiver", "transmitter"):
            raise ValueError(f"bind must be transceiver or transmitter, not {self.bind!r}")
        for name in ("submit_timeout_s", "connect_timeout_s", "reconnect_min_s",
                     "reconnect_max_s", "liveness_check_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if self.max_submits_per_s is not None and self.max_submits_per_s <= 0:
            raise ValueError("max_submits_per_s must be > 0")


# -- the transport -----------------------------------------------------------------


class SmppTransport:
    """:class:`~acd.sms.transport.SmsTransport` over one SMPP bind.

    ``country``: the configured country calling code (acd.yaml
    ``country_code``), for the national form of a destination."""

    name = "smpp"

    def __init__(self, config: SmppConfig, country: str = DEFAULT_COUNTRY) -> None:
        self.config = config
        self.country = country
        self._on_receipt: OnReceipt | None = None
        self._on_inbound: OnInbound | None = None
        self._smsc: smpp34.Smsc | None = None
        self._bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._groups: OrderedDict[str, _Group] = OrderedDict()
        self._mo_parts: OrderedDict[tuple[str, int, int], dict[int, bytes]] = OrderedDict()
        self._rate_lock = asyncio.Lock()
        self._next_slot = 0.0
        self.binds = 0  # successful binds so far
        #: an SMSC down (a line per bind attempt), bad receipts: one line a
        #: minute of each kind, with a count; flushed at the next bind and at close
        self.limited = Limited(60.0)
        self.last_error = ""  # why the last bind or session failed

    # -- lifecycle ---------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self._smsc is not None

    async def wait_bound(self, timeout: float) -> bool:
        """True once bound (at once if already), False after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                await self._bound.wait()
        except TimeoutError:
            return False
        return True

    async def start(self, on_receipt: OnReceipt, on_inbound: OnInbound) -> None:
        self._on_receipt, self._on_inbound = on_receipt, on_inbound
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sms-smpp")

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.limited.flush(log)

    async def _run(self) -> None:
        cfg = self.config
        backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s)
        while not self._closing:
            try:
                lasted = await self._bind_and_serve()
                if lasted is not None:
                    if lasted >= cfg.reconnect_max_s:  # a session that held: start over
                        backoff.reset()
                    self.limited.warning(log, "ended", "SMPP session with %s:%d ended (%s); "
                                         "binding again in %.1f s", cfg.host, cfg.port,
                                         self.last_error or "closed", backoff.delay)
                else:
                    self.limited.warning(log, "bind", "SMPP %s; again in %.1f s",
                                         self.last_error, backoff.delay)
            except Exception as exc:  # noqa: BLE001 - logged with its traceback, rate-limited
                self.last_error = brief(exc)
                self.limited.error(log, "failed", "SMPP session failed (%s); binding again in "
                                   "%.1f s", self.last_error, backoff.delay, exc_info=exc)
            await asyncio.sleep(backoff.delay)
            backoff.grow()

    async def _bind_and_serve(self) -> float | None:
        """One bind and its session: how long the session lasted, None if the bind failed."""
        cfg = self.config
        client = smpp34.Client(
            cfg.host, cfg.port, cfg.system_id, cfg.password,
            bind_type="TRX" if cfg.bind == "transceiver" else "TX",
            system_type=cfg.system_type, window_size=cfg.window,
            connect_timeout_ms=int(cfg.connect_timeout_s * 1000),
        )
        try:
            try:
                smsc = await client.connect()
            except smpp34.SmppError as exc:
                self.last_error = f"bind to {cfg.host}:{cfg.port} failed: {exc}"
                return None
            self.binds += 1
            self.limited.flush(log)
            log.info("SMPP bound to %s:%d as %r (%s)", cfg.host, cfg.port, cfg.system_id,
                     cfg.bind)
            bound_at = time.monotonic()
            try:
                await self._session(client, smsc)
            finally:
                self._smsc = None
                self._bound.clear()
                if self._closing:
                    with contextlib.suppress(smpp34.SmppError, TimeoutError):
                        async with asyncio.timeout(2.0):
                            await smsc.unbind()
            return time.monotonic() - bound_at
        finally:
            with contextlib.suppress(smpp34.SmppError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await client.stop()

    async def _session(self, client: smpp34.Client, smsc: smpp34.Smsc) -> None:
        """Read the session's events until it ends; ``send`` may use it meanwhile."""
        self.last_error = ""
        self._smsc = smsc
        self._bound.set()
        reader = asyncio.get_running_loop().create_task(self._read(smsc), name="sms-smpp-read")
        try:
            while True:
                done, _ = await asyncio.wait({reader}, timeout=self.config.liveness_check_s)
                if done:
                    reader.result()
                    return
                if not await client.is_alive():
                    # Normally Disconnected has already come through the reader; if it
                    # was lost, stop sending now and let the reader drain what is queued.
                    self.last_error = "session task ended"
                    self._smsc = None
                    self._bound.clear()
                    await asyncio.wait({reader}, timeout=1.0)
                    return
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self, smsc: smpp34.Smsc) -> None:
        while True:
            ev = await smsc.next()
            if isinstance(ev, smpp34.Disconnected):
                self.last_error = self.last_error or "disconnected"
                return
            try:
                await self._deliver(ev)
            except Exception as exc:  # noqa: BLE001 - logged with its traceback, rate-limited
                self.limited.error(log, "deliver", "SMPP: handling a deliver_sm failed: %s",
                                   brief(exc), exc_info=exc)

    # -- sending -----------------------------------------------------------------

    def _source(self, sender: str) -> tuple[str, int, int]:
        cfg = self.config
        source = sender or cfg.source_addr
        alnum = bool(source) and not source.isdigit()
        ton = cfg.source_ton if cfg.source_ton is not None else (5 if alnum else 0)
        npi = cfg.source_npi if cfg.source_npi is not None else (0 if alnum else 1)
        return source, ton, npi

    async def _throttle(self) -> None:
        rate = self.config.max_submits_per_s
        if rate is None:
            return
        async with self._rate_lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + 1.0 / rate
            if wait > 0:
                await asyncio.sleep(wait)

    async def send(self, msg: OutgoingSms) -> str:
        """Submit every part of ``msg``; the SMSC's message id of the FIRST part."""
        cfg = self.config
        to = destination(msg.to, cfg.dest_ton, self.country)
        try:
            data_coding, parts = split_message(msg.text, msg.sms_id & 0xFF)
        except ValueError as exc:
            raise PermanentSmsError(str(exc)) from exc
        source, source_ton, source_npi = self._source(msg.sender)
        esm_class = ESM_UDHI if len(parts) > 1 else 0
        group: _Group | None = None
        try:
            for seq, part in enumerate(parts, 1):
                smsc = self._smsc
                if smsc is None:
                    raise TransportError(f"SMPP not bound to {cfg.host}:{cfg.port}"
                                         + (f" ({self.last_error})" if self.last_error else ""))
                await self._throttle()
                try:
                    async with asyncio.timeout(cfg.submit_timeout_s):
                        resp = await smsc.submit_sm(
                            to, part, source_addr=source, source_addr_ton=source_ton,
                            source_addr_npi=source_npi, dest_addr_ton=cfg.dest_ton,
                            dest_addr_npi=cfg.dest_npi, service_type=cfg.service_type,
                            esm_class=esm_class, data_coding=data_coding,
                            registered_delivery=1 if cfg.registered_delivery else 0)
                except TimeoutError as exc:
                    raise TransportError(f"no submit_sm_resp within {cfg.submit_timeout_s:g} s"
                                         f" (part {seq}/{len(parts)})") from exc
                except smpp34.SmppError as exc:
                    raise TransportError(f"submit_sm failed: {exc}") from exc
                status = resp.command_status
                if status != 0:
                    what = f"SMSC refused part {seq}/{len(parts)}: {status_name(status)}"
                    if status in PERMANENT_STATUSES or status in cfg.extra_permanent_statuses:
                        raise PermanentSmsError(what)
                    raise TransportError(what)
                message_id = resp.message_id or ""
                if cfg.msg_id_bases is not None:
                    message_id = normalize_id(message_id, cfg.msg_id_bases[0])
                if group is None:
                    group = _Group(message_id, len(parts))
                self._remember(message_id, group)
        except BaseException:
            if group is not None:
                group.done = True  # a retry sends it again: ignore this attempt's receipts
            raise
        assert group is not None
        return group.first_id

    def _remember(self, message_id: str, group: _Group) -> None:
        if not message_id:
            return
        self._groups[message_id] = group
        self._groups.move_to_end(message_id)
        while len(self._groups) > self.config.receipt_memory:
            self._groups.popitem(last=False)

    # -- receiving ----------------------------------------------------------------

    async def _deliver(self, ev: smpp34.DeliverSmEvent) -> None:
        if is_receipt(ev.esm_class):
            await self._receipt(ev)
        else:
            await self._mo(ev)

    async def _receipt(self, ev: smpp34.DeliverSmEvent) -> None:
        rid, state = parse_receipt(ev.short_message, ((t.tag, t.value) for t in ev.tlvs))
        if not rid or not state:
            # not its text: a receipt quotes the start of the SMS
            self.limited.warning(log, "receipt", "SMPP receipt without id or state (%d bytes): "
                                 "ignored", len(ev.short_message))
            return
        if state in NON_FINAL_STATES:
            log.debug("SMPP receipt %s: %s (not final)", rid, state)
            return
        if self.config.msg_id_bases is not None:
            rid = normalize_id(rid, self.config.msg_id_bases[1])
        delivered = state in DELIVERED_STATES
        group = self._groups.get(rid)
        if group is None:
            receipt = DeliveryReceipt(rid, delivered, state)
        else:
            if group.done:
                return
            if delivered:
                group.delivered.add(rid)
                if len(group.delivered) < group.parts:
                    return
            group.done = True
            receipt = DeliveryReceipt(group.first_id, delivered, state)
        if self._on_receipt is not None:
            await self._on_receipt(receipt)

    async def _mo(self, ev: smpp34.DeliverSmEvent) -> None:
        data = ev.short_message
        if not data:
            data = next((t.value for t in ev.tlvs if t.tag == TLV_MESSAGE_PAYLOAD), b"")
        if ev.esm_class & ESM_UDHI:
            concat, data = parse_udh(data)
            if concat is not None and concat[1] > 1:
                ref, total, seq = concat
                key = (ev.source_addr, ref, total)
                parts = self._mo_parts.setdefault(key, {})
                parts[seq] = data
                while len(self._mo_parts) > 1000:
                    self._mo_parts.popitem(last=False)
                if len(parts) < total:
                    return
                del self._mo_parts[key]
                data = b"".join(parts[i] for i in sorted(parts))
        text = decode_short_message(data, ev.data_coding)
        if self._on_inbound is not None:
            await self._on_inbound(InboundSms(ev.source_addr, text))
