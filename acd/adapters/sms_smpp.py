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
* the encoding and the split (:func:`split_message`): GSM 03.38 7-bit
  (``data_coding`` 0, one septet per octet, the extension table costing two)
  when every character fits, else UCS-2 (UTF-16-BE, ``data_coding`` 8, characters
  outside the BMP as surrogate pairs).  Long texts go out as concatenated parts
  with a UDH (IEI 0x00, 8-bit reference, ``esm_class`` 0x40): 153 septets or 67
  UTF-16 units a part (160 / 70 for a message of one part).  The reference is
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
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import smpp34

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

# -- data coding and the split ---------------------------------------------

DC_GSM7 = 0x00  # SMSC default alphabet: GSM 03.38, unpacked (one septet per octet)
DC_UCS2 = 0x08
ESM_UDHI = 0x40

GSM7_SINGLE, GSM7_PART = 160, 153  # septets
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units
MAX_PARTS = 255

# GSM 03.38 default alphabet, by code (0x1B is the escape to the extension table).
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_GSM_ESC = 0x1B
_GSM_EXT = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
            "]": 0x3E, "|": 0x40, "€": 0x65}
_GSM_ENCODE: dict[str, bytes] = {ch: bytes([i]) for i, ch in enumerate(_GSM_BASIC)
                                 if i != _GSM_ESC}
_GSM_ENCODE.update({ch: bytes([_GSM_ESC, code]) for ch, code in _GSM_EXT.items()})
_GSM_DECODE_EXT = {code: ch for ch, code in _GSM_EXT.items()}


def gsm7_encode(text: str) -> bytes | None:
    """``text`` as unpacked GSM 03.38 septets, or None if a character does not fit."""
    try:
        return b"".join(_GSM_ENCODE[ch] for ch in text)
    except KeyError:
        return None


def gsm7_decode(data: bytes) -> str:
    out: list[str] = []
    escaped = False
    for b in data:
        if escaped:
            out.append(_GSM_DECODE_EXT.get(b, " "))
            escaped = False
        elif b == _GSM_ESC:
            escaped = True
        else:
            out.append(_GSM_BASIC[b & 0x7F])
    return "".join(out)


def split_message(text: str, ref: int = 0) -> tuple[int, list[bytes]]:
    """The ``data_coding`` and the ``short_message`` of each part for ``text``.

    GSM 7-bit when every character is in the GSM 03.38 default alphabet or its
    extension table (an extension character costs two septets and is never cut
    from its escape), else UCS-2 (a surrogate pair is never cut).  One part
    without a UDH up to 160 septets / 70 units; beyond, parts of at most 153
    septets / 67 units, each behind the 6-octet UDH ``05 00 03 ref total seq``.
    Raises ValueError past 255 parts.
    """
    # Each character's bytes: 1 or 2 septets (one an octet), or 2 or 4 UTF-16 octets.
    gsm = [_GSM_ENCODE.get(ch) for ch in text]
    chars: list[bytes]
    if all(c is not None for c in gsm):
        dc, chars = DC_GSM7, [c for c in gsm if c is not None]
        single, per_part = GSM7_SINGLE, GSM7_PART  # octets, as septets are one each
    else:
        dc, chars = DC_UCS2, [ch.encode("utf-16-be") for ch in text]
        single, per_part = 2 * UCS2_SINGLE, 2 * UCS2_PART
    if sum(len(c) for c in chars) <= single:
        return dc, [b"".join(chars)]
    chunks: list[bytearray] = [bytearray()]
    for c in chars:
        if len(chunks[-1]) + len(c) > per_part:
            chunks.append(bytearray())
        chunks[-1] += c
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"text needs {len(chunks)} parts; at most {MAX_PARTS}")
    total = len(chunks)
    return dc, [bytes([5, 0x00, 3, ref & 0xFF, total, seq]) + bytes(chunk)
                for seq, chunk in enumerate(chunks, 1)]


# SMPP 3.4 data_coding 0x01-0x0E (5.2.19); 0x0F is GB 2312/GBK on Chinese gateways (CMPP's 15).
_SMPP_CODECS = {0x01: "ascii", 0x02: "latin-1", 0x03: "latin-1", 0x04: "latin-1",
                0x06: "iso8859_5", 0x07: "iso8859_8", 0x08: "utf-16-be", 0x0E: "euc_kr",
                0x0F: "gbk"}


def decode_short_message(data: bytes, data_coding: int) -> str:
    """The text of an inbound message (UDH already removed), by its ``data_coding``."""
    dc = data_coding
    codec = _SMPP_CODECS.get(dc)
    if codec is None:
        if 0x10 <= dc <= 0x3F:  # GSM 03.38 general data coding, with a message class
            codec = ("gsm", "latin-1", "utf-16-be", "latin-1")[(dc >> 2) & 3]
        elif dc == 0x00 or 0xC0 <= dc <= 0xDF:
            codec = "gsm"
        elif 0xE0 <= dc <= 0xEF:
            codec = "utf-16-be"
        elif 0xF0 <= dc:
            codec = "latin-1" if dc & 0x04 else "gsm"
        else:
            codec = "latin-1"
    if codec == "gsm":
        if any(b > 0x7F for b in data):  # not septets: an SMSC that means Latin-1 by 0
            return data.decode("latin-1")
        return gsm7_decode(data)
    return data.decode(codec, errors="replace")


def parse_udh(data: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """(ref, total, seq) of a concatenation IE if any, and the payload after the UDH."""
    if not data:
        return None, data
    udhl = data[0]
    udh, payload = data[1 : 1 + udhl], data[1 + udhl :]
    pos, concat = 0, None
    while pos + 2 <= len(udh):
        iei, length = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + length]
        if iei == 0x00 and length == 3:
            concat = (value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            concat = ((value[0] << 8) | value[1], value[2], value[3])
        pos += 2 + length
    return concat, payload


# -- submit statuses ---------------------------------------------------------

STATUS_NAMES: dict[int, str] = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID", 0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND",
    0x06: "ESME_RINVPRTFLG", 0x07: "ESME_RINVREGDLVFLG", 0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID",
    0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP", 0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG", 0x42: "ESME_RINVSUBREP",
    0x43: "ESME_RINVESMCLASS", 0x44: "ESME_RCNTSUBDL", 0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI", 0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP", 0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY", 0x63: "ESME_RINVDFTMSGID", 0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN", 0x67: "ESME_RQUERYFAIL",
    0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD", 0xC2: "ESME_RINVPARLEN",
    0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL", 0xFE: "ESME_RDELIVERYFAILURE",
    0xFF: "ESME_RUNKNOWNERR",
}

# Statuses that say *this message* will never be accepted.  Everything else
# (THROTTLED, MSGQFUL, SYSERR, SUBMITFAIL, X_T_APPN, bind-state errors,
# UNKNOWNERR and vendor codes 0x400-0x4FF) is worth another try later: a
# wrongly temporary status costs the sender's bounded retries, a wrongly
# permanent one loses the message.
PERMANENT_STATUSES = frozenset({
    0x01, 0x02, 0x03, 0x06, 0x07, 0x0A, 0x0B, 0x15, 0x33, 0x34, 0x40, 0x42, 0x43, 0x48, 0x49,
    0x50, 0x51, 0x53, 0x54, 0x55, 0x61, 0x62, 0x63, 0x65, 0x66, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4,
})


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08X}")


# -- receipts ------------------------------------------------------------------

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_MESSAGE_PAYLOAD = 0x0424

ESM_TYPE_MASK = 0x3C
ESM_RECEIPT = 0x04  # SMSC delivery receipt
ESM_INTERMEDIATE = 0x20  # intermediate delivery notification

MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
                  6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
DELIVERED_STATES = frozenset({"DELIVRD", "DELIVERED"})
NON_FINAL_STATES = frozenset({"ENROUTE", "ACCEPTD", "ACCEPTED", "BUFFRED", "BUFFERED",
                              "SUBMITD", "SUBMITTED", "SCHEDULED", "SCHEDUL"})

_ID_RE = re.compile(rb"\bid:\s*([^\s]+)", re.IGNORECASE)
_STAT_RE = re.compile(rb"\bstat:\s*([A-Za-z_]+)", re.IGNORECASE)


def is_receipt(esm_class: int) -> bool:
    return esm_class & ESM_TYPE_MASK in (ESM_RECEIPT, ESM_INTERMEDIATE)


def parse_receipt(short_message: bytes, tlvs: Iterable[tuple[int, bytes]]) -> tuple[str, str]:
    """(message id, state) of a receipt; either may be "" when the SMSC left it out."""
    rid, state = "", ""
    for tag, value in tlvs:
        if tag == TLV_RECEIPTED_MESSAGE_ID:
            rid = value.rstrip(b"\0").decode("latin-1").strip()
        elif tag == TLV_MESSAGE_STATE and value:
            state = MESSAGE_STATES.get(value[0], "UNKNOWN")
    if not rid and (m := _ID_RE.search(short_message)):
        rid = m.group(1).decode("latin-1")
    if not state and (m := _STAT_RE.search(short_message)):
        state = m.group(1).decode("latin-1").upper()
    return rid, state


def normalize_id(message_id: str, base: int | None) -> str:
    """``message_id`` read as a number in ``base``, in decimal; as it is if it is not one."""
    if base is None:
        return message_id
    try:
        return str(int(message_id, base))
    except ValueError:
        return message_id


@dataclass(slots=True)
class _Group:
    """One sent message's parts, for turning their receipts into one."""

    first_id: str
    parts: int
    delivered: set[str] = field(default_factory=set)
    done: bool = False


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
    dest_ton: int = 1  # international: OutgoingSms.to is E.164 without '+'
    dest_npi: int = 1  # ISDN/E.164; national numbers usually want dest_ton 0 or 2
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
    """:class:`~acd.sms.transport.SmsTransport` over one SMPP bind."""

    name = "smpp"

    def __init__(self, config: SmppConfig) -> None:
        self.config = config
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

    async def _run(self) -> None:
        cfg = self.config
        delay = cfg.reconnect_min_s
        while not self._closing:
            try:
                lasted = await self._bind_and_serve()
                if lasted is not None:
                    if lasted >= cfg.reconnect_max_s:  # a session that held: start over
                        delay = cfg.reconnect_min_s
                    log.warning("SMPP session with %s:%d ended (%s); binding again in %.1f s",
                                cfg.host, cfg.port, self.last_error or "closed", delay)
                else:
                    log.warning("SMPP %s; again in %.1f s", self.last_error, delay)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("SMPP session failed; binding again in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, cfg.reconnect_max_s)

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
            except Exception:
                log.exception("SMPP: handling a deliver_sm failed")

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
                            msg.to, part, source_addr=source, source_addr_ton=source_ton,
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
            log.warning("SMPP receipt without id or state: %r", ev.short_message[:120])
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
