"""SMS over MQTT (aiomqtt 2.x): the engine publishes, an SMS gateway sends.

Topics (``prefix`` defaults to ``acd``; payloads are UTF-8 JSON):

==========================  =========  ===================================================
``<prefix>/sms/out``        engine ->  ``{"id": 17, "to": "13800138000", "text": "...",
                                        "sender": "10086"}``, QoS 1.  ``id`` is the
                                        idempotency key: a gateway drops an ``id`` it has
                                        already sent (MQTT QoS 1 is at least once)
``<prefix>/sms/receipt``    -> engine  ``{"id": 17, "status": "DELIVRD", "delivered": true}``
``<prefix>/sms/in``         -> engine  ``{"from": "13800138000", "text": "TD"}`` (replies)
``<prefix>/app/login``      -> engine  ``{"number": "13800138000"}`` (the app saw a login:
                                        counts as diversion)
==========================  =========  ===================================================

``send`` returns when the broker has acknowledged the publish (PUBACK).
While the broker is down, ``send`` raises :class:`TransportError` at once
and the sender retries later; a background task reconnects with backoff and
subscribes again (a persistent session, so receipts published meanwhile are
kept by the broker).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from acd.adapters.backoff import Backoff
from acd.logs import Limited, brief
from acd.sms.transport import (
    DeliveryReceipt,
    InboundSms,
    OnInbound,
    OnReceipt,
    OutgoingSms,
    TransportError,
)

log = logging.getLogger(__name__)

OnAppLogin = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    prefix: str = "acd"
    client_id: str = "acd-engine"
    publish_timeout_s: float = 5.0
    reconnect_max_s: float = 10.0
    keepalive_s: int = 30


class MqttTransport:
    name = "mqtt"

    def __init__(self, config: MqttConfig | None = None,
                 on_app_login: OnAppLogin | None = None) -> None:
        self.config = config or MqttConfig()
        self.on_app_login = on_app_login
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_receipt: OnReceipt | None = None
        self._on_inbound: OnInbound | None = None
        self.connects = 0
        #: a broker down (a line per retry), bad messages: one line a minute of
        #: each kind, with a count; flushed when the link is back and at close
        self.limited = Limited(60.0)

    def topic(self, leaf: str) -> str:
        return f"{self.config.prefix}/{leaf}"

    async def start(self, on_receipt: OnReceipt, on_inbound: OnInbound) -> None:
        self._on_receipt, self._on_inbound = on_receipt, on_inbound
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sms-mqtt")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        cfg = self.config
        backoff = Backoff(0.5, cfg.reconnect_max_s)
        while True:
            try:
                async with aiomqtt.Client(
                        cfg.host, cfg.port, username=cfg.username, password=cfg.password,
                        identifier=cfg.client_id, clean_session=False,
                        keepalive=cfg.keepalive_s, timeout=cfg.publish_timeout_s) as client:
                    for leaf in ("sms/receipt", "sms/in", "app/login"):
                        await client.subscribe(self.topic(leaf), qos=1)
                    self._client = client
                    self._connected.set()
                    self.connects += 1
                    backoff.reset()
                    self.limited.flush(log)
                    log.info("SMS MQTT connected to %s:%s", cfg.host, cfg.port)
                    async for message in client.messages:
                        await self._dispatch(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                self.limited.warning(log, "down", "SMS MQTT link to %s:%s down (%s); retrying "
                                     "in %.1f s", cfg.host, cfg.port, brief(exc), backoff.delay)
            finally:
                self._connected.clear()
                self._client = None
            await asyncio.sleep(backoff.delay)
            backoff.grow()

    async def _dispatch(self, topic: str, payload: object) -> None:
        try:
            data = json.loads(payload if isinstance(payload, bytes | str) else b"")
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if topic == self.topic("sms/receipt"):
                status = str(data.get("status", ""))
                delivered = bool(data.get("delivered", status == "DELIVRD"))
                if self._on_receipt is not None:
                    await self._on_receipt(DeliveryReceipt(str(data["id"]), delivered, status))
            elif topic == self.topic("sms/in"):
                if self._on_inbound is not None:
                    await self._on_inbound(InboundSms(str(data["from"]), str(data["text"])))
            elif topic == self.topic("app/login") and self.on_app_login is not None:
                await self.on_app_login(str(data["number"]))
        except (ValueError, KeyError) as exc:
            # not the payload: it carries callers' numbers and texts
            size = len(payload) if isinstance(payload, bytes | str) else 0
            self.limited.warning(log, f"bad {topic}", "SMS MQTT: bad message on %s (%s; %d "
                                 "bytes): dropped", topic, brief(exc), size)
        except Exception as exc:  # noqa: BLE001 - logged with its traceback, rate-limited
            self.limited.error(log, f"failed {topic}", "SMS MQTT: handling a message on %s "
                               "failed: %s", topic, brief(exc), exc_info=exc)

    async def send(self, msg: OutgoingSms) -> str:
        client = self._client
        if client is None or not self._connected.is_set():
            raise TransportError(f"MQTT broker {self.config.host}:{self.config.port} "
                                 "not connected")
        payload = json.dumps({"id": msg.sms_id, "to": msg.to, "text": msg.text,
                              "sender": msg.sender}, ensure_ascii=False)
        try:
            await client.publish(self.topic("sms/out"), payload.encode(), qos=1,
                                 timeout=self.config.publish_timeout_s)
        except aiomqtt.MqttError as exc:
            raise TransportError(f"MQTT publish failed: {exc}") from None
        return str(msg.sms_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.limited.flush(log)
