"""Agents' phones: ``PJSIP/<ext>`` endpoints with a scripted behaviour.

A phone with a channel (ringing or talking) is busy: a second ``Dial``
gets ``BUSY``.  Device state goes ``NOT_INUSE`` -> ``RINGING`` ->
``INUSE`` -> ``NOT_INUSE`` and is published as ``DeviceStateChange``
(``Device: PJSIP/1001``), as app_dial's outbound legs do in answered.txt;
an unregistered idle phone is ``UNAVAILABLE`` (chan_pjsip_devicestate: the
endpoint's state when it has no channel, the channels' otherwise).  AMI
``DeviceStateList`` reports every phone's current state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from sim.channels import STATE_RINGING, STATE_UP, Channel, PhoneHook
from sim.config import PhoneBehaviour

if TYPE_CHECKING:
    from sim.config import SimConfig
    from sim.events import Events


class Phone:
    """One agent phone."""

    __slots__ = ("behaviour", "calls", "channel", "device", "device_state", "ext")

    def __init__(self, ext: str, behaviour: PhoneBehaviour) -> None:
        self.ext = ext
        self.behaviour = behaviour
        self.device = f"PJSIP/{ext}"
        self.channel: Channel | None = None
        self.device_state = "NOT_INUSE" if behaviour.registered else "UNAVAILABLE"
        #: number of calls this phone answered.
        self.calls = 0

    @property
    def available(self) -> bool:
        return self.behaviour.registered

    def busy_now(self) -> bool:
        return self.behaviour.busy or self.channel is not None


class PhoneBank:
    """All phones, their ringing/answering/talk timers and device states."""

    def __init__(self, cfg: SimConfig, events: Events,
                 remote_hangup: Callable[[Channel, int], None]) -> None:
        self._cfg = cfg
        self._events = events
        self._remote_hangup = remote_hangup
        self.phones: dict[str, Phone] = {}

    def add(self, ext: str, behaviour: PhoneBehaviour | None = None) -> Phone:
        """Add a phone, or replace the behaviour of an existing one."""
        phone = self.phones.get(ext)
        behaviour = behaviour or PhoneBehaviour()
        if phone is None:
            phone = self.phones[ext] = Phone(ext, behaviour)
        else:
            phone.behaviour = behaviour
        if phone.channel is None:
            self._set_state(phone, "NOT_INUSE" if behaviour.registered else "UNAVAILABLE")
        return phone

    def set_registered(self, ext: str, registered: bool) -> None:
        """Register or unregister ``PJSIP/<ext>`` (KeyError naming it if unknown)."""
        phone = self.phones.get(ext)
        if phone is None:
            raise KeyError(f"no phone PJSIP/{ext} in the simulator")
        # a copy: one PhoneBehaviour may be shared by several phones
        phone.behaviour = dataclasses.replace(phone.behaviour, registered=registered)
        if phone.channel is None:
            self._set_state(phone, "NOT_INUSE" if registered else "UNAVAILABLE")

    def get(self, ext: str) -> Phone | None:
        return self.phones.get(ext)

    def _set_state(self, phone: PhoneHook, state: str) -> None:
        if phone.device_state != state:
            phone.device_state = state
            self._events.device_state(phone.device, state)

    def ring(self, leg: Channel, phone: Phone) -> None:
        """The phone starts ringing for ``leg``; it answers if its behaviour says so."""
        phone.channel = leg
        leg.phone = phone
        leg.state = STATE_RINGING
        self._events.newstate(leg)
        self._set_state(phone, "RINGING")
        if phone.behaviour.answers:
            leg.call_later(self._cfg.scaled(phone.behaviour.answer_after_s), self._answer, leg)

    def _answer(self, leg: Channel) -> None:
        if leg.destroyed or leg.hungup or leg.answered:
            return
        leg.answered = True
        leg.state = STATE_UP
        self._events.newstate(leg)
        if leg.phone is not None:
            leg.phone.calls += 1
            self._set_state(leg.phone, "INUSE")
        leg.poke()

    def start_talk(self, leg: Channel) -> None:
        """The agent talks, then hangs up (unless the other side does first)."""
        if leg.phone is None:
            return
        talk = max(0.0, leg.phone.behaviour.draw_talk_s())
        leg.call_later(self._cfg.scaled(talk), self._agent_hangs_up, leg)

    def _agent_hangs_up(self, leg: Channel) -> None:
        if not leg.destroyed and not leg.hungup:
            self._remote_hangup(leg, 16)

    def release(self, leg: Channel) -> None:
        """The leg is gone: the phone is free again."""
        phone = leg.phone
        if phone is not None and phone.channel is leg:
            phone.channel = None
            self._set_state(phone, "NOT_INUSE" if phone.behaviour.registered else "UNAVAILABLE")
