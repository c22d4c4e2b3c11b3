"""SMS diversion as the engine wires it: the transport the configuration
names, and the facts of an ended call that the SMS rules look at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acd.core.model import CallRecord
from acd.runtime.calls import LiveCall
from acd.runtime.settings import SmsConfig
from acd.sms.policy import CallFacts


def make_transport(cfg: SmsConfig, on_app_login: Callable[[str], Any] | None = None) -> Any:
    if cfg.transport == "mqtt":
        from acd.adapters.sms_mqtt import MqttConfig, MqttTransport
        return MqttTransport(cfg.mqtt or MqttConfig(), on_app_login)
    if cfg.transport == "smpp":
        from acd.adapters.sms_smpp import SmppTransport
        return SmppTransport(cfg.smpp, country=cfg.policy.country)  # its national forms
    from acd.adapters.sms_log import LogTransport
    return LogTransport()


def call_facts(rec: CallRecord, call: LiveCall | None) -> CallFacts:
    """The ended call as the rules see it: its record, and from the engine's
    record of it the caller's intent, language and the flow's SMS marks."""
    run = call.run if call is not None else None
    attrs = call.attrs if call is not None else {}
    return CallFacts(
        call_id=rec.call_id, caller=rec.caller, caller_name=rec.caller_name,
        outcome=rec.outcome.value, ended_at=rec.ended_at, wait_s=rec.wait_s,
        ivr_path=rec.ivr_path, queue=rec.queue, agent_id=rec.agent_id,
        intent=attrs.get("intent"),
        language=run.language if run is not None else None,
        marks=tuple(run.sms) if run is not None else ())
