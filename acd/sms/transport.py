"""What every SMS transport (log, MQTT, SMPP) offers the sender.

A transport delivers one message at a time to a gateway.  ``send`` returns
once the gateway has *accepted* the message (MQTT: the broker acknowledged
the QoS 1 publish; SMPP: ``submit_sm_resp`` with status 0), with the
gateway's message id; it raises :class:`TransportError` when it could not
(the sender retries with backoff) or :class:`PermanentSmsError` when the
gateway refused this message for good (the sender marks it failed).

Delivery receipts and inbound messages (a caller replying STOP/TD) arrive
later, on the transport's own connection; the transport hands them to the
callbacks the sender gave it.  Every transport must survive the gateway
going away and coming back: ``send`` fails meanwhile, nothing is lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    sms_id: int  # the outbox row: unique, stable across retries (idempotency key)
    to: str  # as dialled in the configured country: 13800138000, 0016502530000 (SMPP: per TON)
    text: str  # Unicode; the transport encodes it (GSM 7-bit or UCS-2) and splits it
    sender: str = ""  # source address / sender id


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str  # the id `send` returned
    delivered: bool
    status: str = ""  # gateway's words: DELIVRD, UNDELIV, EXPIRED...


@dataclass(frozen=True, slots=True)
class InboundSms:
    sender: str  # the phone that wrote
    text: str


class TransportError(Exception):
    """The message was not accepted now; try again later."""


class PermanentSmsError(Exception):
    """The gateway refused this message for good (bad number, ...)."""


OnReceipt = Callable[[DeliveryReceipt], Awaitable[None]]
OnInbound = Callable[[InboundSms], Awaitable[None]]


class SmsTransport(Protocol):
    name: str

    async def start(self, on_receipt: OnReceipt, on_inbound: OnInbound) -> None:
        """Connect (or begin trying to) and start listening; must not raise
        when the gateway is down: `send` fails until it is back."""

    async def send(self, msg: OutgoingSms) -> str:
        """Hand one message to the gateway; its message id."""

    async def close(self) -> None: ...
