"""The core's refusals: every error the core raises for an event it will not
take shares the base class :class:`CoreError`.

:class:`~acd.core.fsm.IllegalTransition` (a state table has no row for a
trigger) lives with the tables in :mod:`acd.core.fsm`; the others are here.
"""

from __future__ import annotations


class CoreError(Exception):
    """The core refused an event (or a configuration): the event names
    something it does not know, or asks for what the state tables forbid."""


class UnknownSubject(CoreError):
    """An event names a call, agent or queue the core does not know."""


class DuplicateCall(CoreError):
    """A call id that is already live was started again (or an agent id was
    defined twice)."""
