"""``acd``: the operator's command line, one click group; each subcommand
group lives in its own module of this package, and what they share in
:mod:`acd.cli.common`.

    acd serve --config acd.yaml     run the engine against Asterisk
    acd demo --calls 200            engine + PBX simulator, then a summary
    acd flow validate FILE...       check IVR flows (also: graph, run, test, reload)
    acd prompts build|list|check    the prompt pack: synthesized prompts beside recorded ones
    acd agents import|list|set      agent profiles stored in the database
    acd agents live show|login|...  the running engine's agents (control API)
    acd staffing ...                agents needed (Erlang C / Erlang A)
    acd forecast ...                calls per interval for the days ahead, backtested
    acd qa sample|list|score|report|export   quality review of a weekly sample of calls
    acd recordings prune [--dry-run]   the retention pass of the call recordings
    acd roster import|show          rosters: a period's from the agents' states; one shown
    acd schedule REQ.csv --rules R  shifts and breaks covering requirements (a roster)
"""

from __future__ import annotations

import click

from acd.cli.control import agent_alias, explain, live, queue
from acd.cli.flow import flow
from acd.cli.forecast import forecast_command
from acd.cli.loadsim import sim_group
from acd.cli.planning import staffing
from acd.cli.profiles import agents, customers
from acd.cli.prompts import prompts
from acd.cli.qa import qa
from acd.cli.recordings import recordings
from acd.cli.report import report
from acd.cli.roster import roster
from acd.cli.schedule import schedule
from acd.cli.serve import demo, serve
from acd.cli.sms import sms


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="acd")
def main() -> None:
    """ACD and IVR engine for Asterisk: answers the hotline over FastAGI,
    runs YAML IVR flows, queues callers and connects them to agents over AMI.

    Start with `acd demo` (no Asterisk needed), then `acd serve` against a
    real Asterisk configured from asterisk_conf/.
    """


# `acd agents`: the stored profiles (import, list, set) and, under `live`,
# the running engine's agents; `acd agent` is the old name of `live`, hidden
agents.add_command(live)

for command in (serve, demo, customers, agents, agent_alias, queue, explain, flow, prompts,
                staffing, sms, report, sim_group, qa, recordings, forecast_command,
                roster, schedule):
    main.add_command(command)
