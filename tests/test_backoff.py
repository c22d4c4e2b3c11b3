"""The one reconnect backoff: the waits the AMI, MQTT, SMPP and record-writer loops take."""

from __future__ import annotations

import pytest

from acd.adapters.backoff import Backoff


def schedule(b: Backoff, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(b.delay)
        b.grow()
    return out


@pytest.mark.parametrize(("initial", "maximum", "waits"), [
    (0.5, 30.0, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),  # AMI defaults
    (0.5, 10.0, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]),  # MQTT defaults
    (1.0, 60.0, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),  # SMPP defaults
    (0.2, 5.0, [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]),  # call-record writer
    (1.2, 0.5, [1.2, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),  # initial above the cap
])
def test_waits_double_up_to_the_cap(initial: float, maximum: float, waits: list[float]) -> None:
    assert schedule(Backoff(initial, maximum), len(waits)) == pytest.approx(waits)


def test_reset_starts_over_and_delay_does_not_advance() -> None:
    b = Backoff(0.5, 30.0)
    assert b.delay == b.delay == 0.5  # reading the wait (to log it) does not change it
    schedule(b, 4)
    assert b.delay == 8.0
    b.reset()
    assert schedule(b, 3) == [0.5, 1.0, 2.0]


def test_factor_and_bad_arguments() -> None:
    assert schedule(Backoff(1.0, 100.0, factor=3.0), 4) == [1.0, 3.0, 9.0, 27.0]
    assert schedule(Backoff(1.0, 100.0, factor=1.0), 3) == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="negative"):
        Backoff(-1.0, 5.0)
    with pytest.raises(ValueError, match="factor"):
        Backoff(1.0, 5.0, factor=0.5)
