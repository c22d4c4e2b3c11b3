"""A simulated Asterisk 22 for testing the ACD engine without a real PBX.

It serves AMI on a real TCP port and connects to the engine's FastAGI
server exactly as Asterisk does, emulating the project's fixed dialplan,
agents' phones and scripted callers.  Behaviour follows the recordings in
``tests/data/asterisk-transcripts`` (see each module's docstring).

    async with SimPBX(SimConfig(agi_url="agi://127.0.0.1:4573", time_scale=0.1)) as pbx:
        pbx.add_phone("1001", PhoneBehaviour(answer_after_s=2, talk_s=30))
        call = await pbx.place_call(CallerScript(number="13800138000", name="张三",
                                                 keys=["1"]))
        result = await call.done
"""

from sim.callers import CallHandle
from sim.config import CallerScript, CallResult, Outcome, PhoneBehaviour, SimConfig
from sim.load import CallerScriptMix, run_load, summarize
from sim.originate import OriginateRequest, OriginateResult
from sim.pbx import SimPBX
from sim.phones import Phone

__all__ = [
    "CallHandle",
    "CallResult",
    "CallerScript",
    "CallerScriptMix",
    "OriginateRequest",
    "OriginateResult",
    "Outcome",
    "Phone",
    "PhoneBehaviour",
    "SimConfig",
    "SimPBX",
    "run_load",
    "summarize",
]
