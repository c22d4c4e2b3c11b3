"""Publishing the engine's events to an MQTT broker (aiomqtt 2.x).

The link takes ready-made messages from a source (the engine's event bus,
:mod:`acd.runtime.event_bus`, which owns the queue and the payloads) and
publishes them in order, up to ``window`` at a time: with QoS 1 or 2 a batch
counts as published when the broker has acknowledged every message of it.
A batch that fails (the broker went away, an acknowledgement did not come
within ``publish_timeout_s``) is kept and published again, first, once the
link is back: at least once, in order, so a consumer may see a message twice
(the payload's sequence number tells).  Reconnects back off from 0.5 s to
``reconnect_max_s``.

Status (optional): on each connect the link sets the MQTT will to the
source's ``lost`` status and publishes ``online``; when the source is
closed and drained it publishes ``offline`` and disconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt

from acd.adapters.backoff import Backoff
from acd.logs import Limited, brief

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message."""

    topic: str
    payload: bytes
    retain: bool = False


#: ``take(n)``: wait for at least one message and return up to ``n`` of them,
#: oldest first; ``[]`` when the source is closed and has none left (the link ends)
Take = Callable[[int], Awaitable[list[Outgoing]]]
#: ``status(state)``: the status message for ``online``, ``offline`` or ``lost``
Status = Callable[[str], Outgoing]


@dataclass(frozen=True, slots=True)
class LinkConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "acd-events"
    qos: int = 1
    keepalive_s: int = 30
    #: the CONNACK, and each batch's acknowledgements
    publish_timeout_s: float = 5.0
    reconnect_max_s: float = 10.0
    #: messages in flight at once
    window: int = 64


class MqttEventLink:
    """The connection to the broker, run by :meth:`run` (a task its owner
    cancels, or that ends when ``take`` returns ``[]``)."""

    def __init__(self, config: LinkConfig, take: Take, status: Status | None = None) -> None:
        self.config = config
        self._take = take
        self._status = status
        self.connected = False
        #: connections made
        self.connects = 0
        #: messages the broker acknowledged (QoS 0: handed to the socket)
        self.published = 0
        #: messages dropped because the broker refused their form (bad topic, too large)
        self.rejected = 0
        #: a broker down (a line per retry) or refusing messages: one line a
        #: minute of each kind, with a count; flushed when the link is back
        self.limited = Limited(60.0)
        self._batch: list[Outgoing] = []

    @property
    def holding(self) -> int:
        """Messages taken from the source and not yet published."""
        return len(self._batch)

    async def run(self) -> None:
        try:
            await self._run()
        finally:  # what the rate limit held back, with its count
            self.limited.flush(log)

    async def _run(self) -> None:
        cfg = self.config
        backoff = Backoff(0.5, cfg.reconnect_max_s)
        while True:
            will = None
            if self._status is not None:
                lost = self._status("lost")
                will = aiomqtt.Will(lost.topic, lost.payload, qos=1, retain=True)
            try:
                async with aiomqtt.Client(
                        cfg.host, cfg.port, username=cfg.username, password=cfg.password,
                        identifier=cfg.client_id, clean_session=True, will=will,
                        keepalive=cfg.keepalive_s, timeout=cfg.publish_timeout_s,
                        max_inflight_messages=cfg.window) as client:
                    # a full window is the plan, not a backlog to warn about
                    client.pending_calls_threshold = cfg.window + 1
                    self.connected = True
                    self.connects += 1
                    backoff.reset()
                    self.limited.flush(log)
                    log.info("events: MQTT connected to %s:%s", cfg.host, cfg.port)
                    await self._session(client)
                    return  # closed and drained
            except aiomqtt.MqttError as exc:
                self.limited.warning(log, "down", "events: MQTT link to %s:%s down (%s); "
                                     "retrying in %.1f s", cfg.host, cfg.port, brief(exc),
                                     backoff.delay)
            finally:
                self.connected = False
            await asyncio.sleep(backoff.delay)
            backoff.grow()

    async def _session(self, client: aiomqtt.Client) -> None:
        """Publish until the source is closed and drained (returns) or the
        link fails (raises :class:`aiomqtt.MqttError`): a watcher notices a
        lost connection at once, rather than when a publish times out."""
        loop = asyncio.get_running_loop()
        work = loop.create_task(self._publish(client), name="events-mqtt-publish")
        watch = loop.create_task(self._watch(client), name="events-mqtt-watch")
        try:
            done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            work.cancel()
            watch.cancel()
            await asyncio.gather(work, watch, return_exceptions=True)
        (work if work in done else watch).result()  # None, or the link's failure

    async def _publish(self, client: aiomqtt.Client) -> None:
        if self._status is not None:
            await self._send(client, [self._status("online")])
        while True:
            if not self._batch:
                self._batch = await self._take(self.config.window)
                if not self._batch:  # closed and drained
                    if self._status is not None:
                        await self._send(client, [self._status("offline")])
                    return
            self.published += await self._send(client, self._batch)
            self._batch = []

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Ends with MqttError when the connection drops (no subscriptions:
        no message ever comes)."""
        async for _ in client.messages:
            pass
        raise aiomqtt.MqttError("the broker ended the message stream")

    async def _send(self, client: aiomqtt.Client, batch: list[Outgoing]) -> int:
        """Publish ``batch`` (paho sends in order) and wait for every
        acknowledgement (each within ``publish_timeout_s``); returns how many
        the broker took.  A message paho refuses (a bad topic, too large) is
        dropped, counted in ``rejected``.  When the link failed, ``batch`` is
        left holding what is to be published again and the failure is raised."""
        cfg = self.config
        results = await asyncio.gather(
            *(client.publish(m.topic, m.payload, qos=cfg.qos, retain=m.retain,
                             timeout=cfg.publish_timeout_s) for m in batch),
            return_exceptions=True)
        failure: aiomqtt.MqttError | None = None
        keep: list[Outgoing] = []
        for message, result in zip(batch, results, strict=True):
            if isinstance(result, ValueError):
                self.rejected += 1
                self.limited.error(log, "refused", "events: message on %r refused: %s "
                                   "(dropped)", message.topic, result)
                continue
            keep.append(message)
            if isinstance(result, aiomqtt.MqttError):
                failure = failure or result
            elif isinstance(result, BaseException):
                raise result
        if failure is not None:
            batch[:] = keep
            raise failure
        return len(keep)
