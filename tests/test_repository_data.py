"""The reference data the suite checks against lives in the repository
(``tests/data/``), so a plain clone runs every Erlang and transcript test
instead of skipping it; when the team's shared copy sits next to the
checkout, the two must not drift apart."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"
TRANSCRIPTS = ("abandon", "answered", "cancel", "coreshow", "ivr_hangup", "ivr_only", "rona",
               "utf8")
#: recorded by the project itself on a real Asterisk 22 (OWN-RECORDINGS.md says how)
OWN_RECORDINGS = frozenset({"queue_log.txt", "mixmonitor.txt", "OWN-RECORDINGS.md"})


def test_the_reference_data_is_in_the_repository() -> None:
    vectors = (DATA / "erlang-vectors.csv").read_text().splitlines()
    assert vectors[0].startswith("model,calls_per_hour,")
    assert len(vectors) > 10  # a header and the rows
    for name in TRANSCRIPTS:
        text = (DATA / "asterisk-transcripts" / f"{name}.txt").read_text()
        assert text.startswith("--- "), name


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared folder next to the checkout")
def test_the_copy_matches_the_shared_reference() -> None:
    assert filecmp.cmp(DATA / "erlang-vectors.csv", SHARED / "erlang-vectors.csv", shallow=False)
    cmp = filecmp.dircmp(DATA / "asterisk-transcripts", SHARED / "asterisk-transcripts")
    assert not cmp.diff_files and not cmp.right_only
    # the project's own recordings of a real Asterisk sit beside the shared ones
    assert set(cmp.left_only) <= OWN_RECORDINGS, cmp.left_only


def test_our_own_recordings_are_described() -> None:
    notes = (DATA / "asterisk-transcripts" / "OWN-RECORDINGS.md").read_text()
    for name in OWN_RECORDINGS - {"OWN-RECORDINGS.md"}:
        assert (DATA / "asterisk-transcripts" / name).is_file(), name
        assert f"## {name}" in notes, name
