"""The PBX simulator as a separate process, for benchmarks.

    python benchmarks/sim_process.py AMI_PORT AGI_URL SECRET AGENTS CALLS RATE TALK_S

Waits for the engine's AMI login, places CALLS calls (Poisson, RATE per
second) that go through the hotline menu to a queue, prints a JSON summary
with the simulator's own CPU seconds, and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from sim.config import PhoneBehaviour, SimConfig
from sim.load import CallerScriptMix, run_load, summarize
from sim.pbx import SimPBX

#: callers through the basic flow's menu (billing, tech, an agent, balance),
#: patient enough that only a slow engine makes them give up; also used by
#: benchmarks/ami_replay.py
MIX = CallerScriptMix(keys=[(["", "1"], 0.4), (["", "2"], 0.3), (["", "0"], 0.2),
                            (["", "3"], 0.1)],
                      patience_s=(300.0, 600.0), ivr_hangup_p=0.0, key_delay_s=(0.1, 0.3))


async def main(argv: list[str]) -> None:
    ami_port, agi_url, secret = int(argv[0]), argv[1], argv[2]
    agents, calls, rate, talk_s = int(argv[3]), int(argv[4]), float(argv[5]), float(argv[6])
    pbx = SimPBX(SimConfig(ami_port=ami_port, agi_url=agi_url, users={"acd": secret},
                           prompt_s=0.2))
    for i in range(agents):
        pbx.add_phone(str(1001 + i), PhoneBehaviour(answer_after_s=0.1, talk_s=talk_s))
    await pbx.start()
    print(json.dumps({"ready": True}), flush=True)
    async with asyncio.timeout(60):
        await pbx.ami.logged_in.wait()
    mix = MIX
    cpu0 = time.process_time()
    results = await run_load(pbx, calls, rate, mix, seed=1)
    summary = summarize(results)
    summary["sim_cpu_s"] = round(time.process_time() - cpu0, 3)
    await pbx.stop()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
