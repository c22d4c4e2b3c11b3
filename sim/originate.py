"""AMI Originate to an agent phone: request, outcome and the ``Reason`` codes.

rona.txt: ``Response: Success`` / ``Originate successfully queued`` at once,
later ``OriginateResponse`` with the same ``ActionID``; ``Reason`` is the
last control frame seen (4 answered, 5 busy, 8 congestion, 3 still ringing
at the timeout, 1 hung up) and ``Uniqueid`` is ``<unknown>`` unless the call
succeeded.  ``Channel`` is the new channel's name on success and the
requested dial string on failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REASON_HANGUP = 1
REASON_NO_ANSWER = 3
REASON_ANSWERED = 4
REASON_BUSY = 5
REASON_CONGESTION = 8
REASON_FAILED = 0


@dataclass(slots=True)
class OriginateRequest:
    """The fields of an AMI ``Originate`` action the simulator uses."""

    channel: str
    action_id: str | None = None
    context: str = ""
    exten: str = ""
    priority: int = 1
    application: str = ""
    data: str = ""
    timeout_s: float = 30.0
    cid_num: str = ""
    cid_name: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    channel_id: str | None = None
    other_channel_id: str | None = None
    is_async: bool = True


@dataclass(frozen=True, slots=True)
class OriginateResult:
    success: bool
    reason: int
    uniqueid: str
    channel: str
