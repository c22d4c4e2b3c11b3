"""The default SMS transport: writes each SMS to the log and "delivers" it.

For a default install with no gateway: the outbox, caps, quiet hours and
reports all work; nothing leaves the machine.  Every message is "accepted"
at once and a delivery receipt follows.
"""

from __future__ import annotations

import asyncio
import logging

from acd.logs import private
from acd.sms.transport import DeliveryReceipt, OnInbound, OnReceipt, OutgoingSms

log = logging.getLogger("acd.sms")


class LogTransport:
    name = "log"

    def __init__(self, receipts: bool = True) -> None:
        self._receipts = receipts
        self._on_receipt: OnReceipt | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, on_receipt: OnReceipt, on_inbound: OnInbound) -> None:
        self._on_receipt = on_receipt

    async def send(self, msg: OutgoingSms) -> str:
        log.info("SMS %d to %s (%d characters): %s", msg.sms_id, private(msg.to), len(msg.text),
                 private(msg.text))
        message_id = f"log-{msg.sms_id}"
        if self._receipts and self._on_receipt is not None:
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
                self._receipt(self._on_receipt, message_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return message_id

    @staticmethod
    async def _receipt(on_receipt: OnReceipt, message_id: str) -> None:
        await on_receipt(DeliveryReceipt(message_id, True, "DELIVRD"))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
