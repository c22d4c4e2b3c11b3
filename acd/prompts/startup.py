"""The check ``acd serve`` makes at start: does the sounds folder hold every
prompt the flow and the engine may play, in each language, where Asterisk
looks (:mod:`acd.ivr.sounds`)?  One warning names the missing ones per
language; with no ``sounds:`` setting, one warning says that nothing was
checked and how to have it checked.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from acd.ivr.nodes import Flow
from acd.prompts.collect import Needs, missing, needed, summary

log = logging.getLogger(__name__)


def check_at_start(flow: Flow, sounds: str | Path | None, compose: Collection[str],
                   config_file: str = "acd.yaml") -> Needs | None:
    """Log what Asterisk would not find (one warning; INFO when nothing is
    missing).  Returns language -> missing prompts, or None: not checked."""
    if sounds is None:
        log.warning("prompts not checked: `sounds:` is not set in %s. Set it to Asterisk's "
                    "sounds folder (/var/lib/asterisk/sounds on the Asterisk host, or a "
                    "mounted copy of it) to hear at start which prompts are missing; "
                    "`acd prompts build` makes them", config_file)
        return None
    folder = Path(sounds)
    if not folder.is_dir():
        log.warning("prompts not checked: the sounds folder %s (`sounds:` in %s) does not "
                    "exist here", folder, config_file)
        return None
    needs = needed([flow], compose)
    gone = missing(needs, folder)
    if gone:
        count = sum(len(v) for v in gone.values())
        log.warning("%d prompt(s) missing in %s, so Asterisk cannot play them (a menu "
                    "whose prompt is missing takes no key: callers fall to its on_fail): "
                    "%s. Make them with `acd prompts build --config %s`, or record them "
                    "(docs/prompts.md)", count, folder, summary(gone), config_file)
    else:
        log.info("prompts: all %d the flow and the engine may play are in %s",
                 sum(len(v) for v in needs.values()), folder)
    return gone
