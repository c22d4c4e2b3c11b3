"""A small in-process SMSC for the SMPP transport's tests.

Written from the SMPP 3.4 specification with :mod:`struct` only, on purpose:
the transport's client library (smpp34) is not used here, so the tests are two
independent implementations of the protocol talking to each other rather than
one library agreeing with itself.

What it does: accepts binds (any bind type; checks the password when given
one), answers ``enquire_link`` and ``unbind``, records every ``submit_sm`` as a
:class:`Submit` and answers it as :attr:`FakeSmsc.policy` says (accept with a
fresh message id, reject with a status, or never answer), pushes ``deliver_sm``
(receipts, MO messages) to a bound session and waits for its
``deliver_sm_resp``.  :meth:`FakeSmsc.stop` closes the listener *and* drops
every session, like an SMSC that crashed or was taken down; :meth:`start` again
brings it back on the same port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

# command ids (SMPP 3.4 section 5.1.2.1)
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
RESP = 0x80000000

# command_status values the tests use (section 5.1.3)
ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RINVDSTADR = 0x0B
ESME_RINVPASWD = 0x0E
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58

HOLD = -1  # policy result: never answer this submit_sm (the client must time out)

TLV_SC_INTERFACE_VERSION = 0x0210
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427


@dataclass(frozen=True, slots=True)
class Submit:
    """One submit_sm as it came off the wire."""

    system_id: str
    service_type: str
    source_ton: int
    source_npi: int
    source: str
    dest_ton: int
    dest_npi: int
    destination: str
    esm_class: int
    protocol_id: int
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    message_id: str  # what the SMSC answered ("" if it rejected or held it)
    status: int


@dataclass(eq=False, slots=True)
class _Session:
    system_id: str
    writer: asyncio.StreamWriter
    bound: bool = False
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    pending: dict[int, asyncio.Future[int]] = field(default_factory=dict)

    def send(self, command_id: int, status: int, seq: int, body: bytes = b"") -> None:
        self.writer.write(struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body)


def _cstr(body: bytes, pos: int) -> tuple[str, int]:
    end = body.index(b"\0", pos)
    return body[pos:end].decode("latin-1"), end + 1


def _tlvs(body: bytes, pos: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while pos + 4 <= len(body):
        tag, length = struct.unpack_from(">HH", body, pos)
        out[tag] = body[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return out


def _c(text: str) -> bytes:
    return text.encode("latin-1") + b"\0"


Policy = Callable[[Submit], int]  # ESME_ROK (accept), an error status, or HOLD


class FakeSmsc:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, password: str | None = None,
                 system_id: str = "FAKESMSC") -> None:
        self.host = host
        self.port = port
        self.password = password
        self.system_id = system_id
        self.policy: Policy = lambda _s: ESME_ROK
        self.submits: list[Submit] = []
        self.binds: list[tuple[int, str, str, str]] = []  # command id, system_id, password, type
        self.deliver_resps: list[int] = []  # command_status of each deliver_sm_resp received
        self.enquire_links = 0
        self.unbinds = 0  # unbind requests received from ESMEs
        self.answer_enquire_link = True  # False: a peer that hangs without closing
        self._ids = itertools.count(0x1000)
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Go away hard: stop listening and drop every session's TCP connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for s in list(self._sessions):
            s.writer.transport.abort()
        if self._tasks:  # each session's reader sees the abort and ends by itself
            await asyncio.wait(list(self._tasks), timeout=2.0)

    async def __aenter__(self) -> FakeSmsc:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what tests wait on ------------------------------------------------

    @property
    def bound_sessions(self) -> int:
        return sum(1 for s in self._sessions if s.bound)

    async def _wait(self, pred: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(pred)

    async def wait_bound(self, timeout: float = 5.0) -> None:
        await self._wait(lambda: self.bound_sessions > 0, timeout)

    async def wait_submits(self, n: int, timeout: float = 5.0) -> list[Submit]:
        await self._wait(lambda: len(self.submits) >= n, timeout)
        return self.submits[:n]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- SMSC -> ESME ------------------------------------------------------

    async def deliver(self, source: str, destination: str, short_message: bytes = b"", *,
                      esm_class: int = 0, data_coding: int = 0,
                      tlvs: dict[int, bytes] | None = None, timeout: float = 5.0) -> int:
        """Send a deliver_sm to the (first) bound session; its deliver_sm_resp status."""
        await self.wait_bound(timeout)
        session = next(s for s in self._sessions if s.bound)
        body = (
            _c("")  # service_type
            + bytes([1, 1]) + _c(source)
            + bytes([0, 1]) + _c(destination)
            + bytes([esm_class, 0, 0]) + _c("") + _c("")
            + bytes([0, 0, data_coding, 0, len(short_message)]) + short_message
        )
        for tag, value in (tlvs or {}).items():
            body += struct.pack(">HH", tag, len(value)) + value
        seq = next(session.seq)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        session.pending[seq] = fut
        session.send(DELIVER_SM, 0, seq, body)
        async with asyncio.timeout(timeout):
            return await fut

    async def unbind_all(self) -> None:
        """A polite goodbye: send unbind to every session (the ESME should answer and go)."""
        for s in list(self._sessions):
            s.send(UNBIND, 0, next(s.seq))

    # -- the wire ----------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session = _Session("", writer)
        self._sessions.add(session)
        try:
            while True:
                header = await reader.readexactly(16)
                length, command_id, status, seq = struct.unpack(">IIII", header)
                body = await reader.readexactly(length - 16) if length > 16 else b""
                await self._handle(session, command_id, status, seq, body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._sessions.discard(session)
            self._tasks.discard(task)
            writer.transport.abort()
            for fut in session.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("session closed"))
            await self._notify()

    async def _handle(self, s: _Session, command_id: int, status: int, seq: int,
                      body: bytes) -> None:
        if command_id in (BIND_TRANSCEIVER, BIND_TRANSMITTER, BIND_RECEIVER):
            system_id, pos = _cstr(body, 0)
            password, pos = _cstr(body, pos)
            system_type, pos = _cstr(body, pos)
            self.binds.append((command_id, system_id, password, system_type))
            if self.password is not None and password != self.password:
                s.send(command_id | RESP, ESME_RINVPASWD, seq, _c(self.system_id))
                return
            s.system_id = system_id
            s.bound = True
            s.send(command_id | RESP, ESME_ROK, seq,
                   _c(self.system_id) + struct.pack(">HHB", TLV_SC_INTERFACE_VERSION, 1, 0x34))
            await self._notify()
        elif command_id == ENQUIRE_LINK:
            self.enquire_links += 1
            if self.answer_enquire_link:
                s.send(ENQUIRE_LINK | RESP, ESME_ROK, seq)
        elif command_id == UNBIND:
            self.unbinds += 1
            s.bound = False
            s.send(UNBIND | RESP, ESME_ROK, seq)
            await s.writer.drain()
            s.writer.close()
        elif command_id == SUBMIT_SM:
            if not s.bound:
                s.send(SUBMIT_SM | RESP, ESME_RINVBNDSTS, seq)
                return
            self._submit(s, seq, body)
            await self._notify()
        elif command_id == DELIVER_SM | RESP:
            self.deliver_resps.append(status)
            fut = s.pending.pop(seq, None)
            if fut is not None and not fut.done():
                fut.set_result(status)
        elif command_id & RESP:
            s.pending.pop(seq, None)  # unbind_resp, generic_nack...
        else:
            s.send(GENERIC_NACK, ESME_RINVCMDID, seq)

    def _submit(self, s: _Session, seq: int, body: bytes) -> None:
        service_type, pos = _cstr(body, 0)
        source_ton, source_npi = body[pos], body[pos + 1]
        source, pos = _cstr(body, pos + 2)
        dest_ton, dest_npi = body[pos], body[pos + 1]
        destination, pos = _cstr(body, pos + 2)
        esm_class, protocol_id, _priority = body[pos], body[pos + 1], body[pos + 2]
        _schedule, pos = _cstr(body, pos + 3)
        _validity, pos = _cstr(body, pos)
        registered_delivery, _replace, data_coding, _default_id, sm_length = body[pos : pos + 5]
        pos += 5
        short_message = body[pos : pos + sm_length]
        tlvs = _tlvs(body, pos + sm_length)
        draft = Submit(s.system_id, service_type, source_ton, source_npi, source, dest_ton,
                       dest_npi, destination, esm_class, protocol_id, registered_delivery,
                       data_coding, short_message, tlvs, "", 0)
        verdict = self.policy(draft)
        if verdict == HOLD:
            self.submits.append(draft)
            return
        message_id = f"{next(self._ids):X}" if verdict == ESME_ROK else ""
        self.submits.append(dataclasses.replace(draft, message_id=message_id, status=verdict))
        s.send(SUBMIT_SM | RESP, verdict, seq, _c(message_id) if verdict == ESME_ROK else b"")
