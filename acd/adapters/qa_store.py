"""Quality review in the engine's database: the weekly samples and the scores
(docs/quality.md).  SQLite or PostgreSQL.

The tables are defined in :mod:`acd.adapters.schema` beside the others, so
every ``Database.create()`` makes them (and adds a column a newer version
defines to an older database).

- ``qa_draws``: one row per kept draw: its week, when, the seed and the
  options (rate or count per agent, min-one, time zone, reviewers in order),
  so that it can be drawn again (``acd qa sample --replay``).
- ``qa_samples``: one row per drawn call (``call_id`` is the key: a call is
  never drawn twice), its week, agent, queue, reviewer, when it was drawn,
  the seed of the draw, its draw (``draw_id``; NULL for a call drawn before
  the draws were kept) and its status (``assigned``, then ``scored``).
- ``qa_scores``: every score given (a call scored again keeps its history;
  reports take the latest), with the form's name and version, the score,
  whether a fatal item failed, the answers as JSON (per item its answer,
  ratio and pass) and the reviewer's comment.

The call's record is read from ``call_records``; its ``recording`` column
(the recordings' part of issue 15) is read when the table has it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from acd.adapters.profiles_store import agents_table
from acd.adapters.schema import (
    aware,
    call_records,
    fit_row,
    qa_draws,
    qa_samples,
    qa_scores,
    utc,
)
from acd.adapters.storage import Database, stored_id
from acd.core.model import Outcome
from acd.qa.report import ScoredCall
from acd.qa.sample import CallRef, DrawOptions, Sample
from acd.qa.scoring import Score

__all__ = ["ASSIGNED", "SCORED", "QaStore", "QaStoreError", "qa_draws", "qa_samples",
           "qa_scores"]

ASSIGNED, SCORED = "assigned", "scored"

#: the record's columns shown beside a review
RECORD_COLUMNS = ("started_at", "ended_at", "queue", "wait_s", "talk_s", "agent_id",
                  "outcome", "customer_class", "caller")


class QaStoreError(Exception):
    """A sample or score the store refuses (the message says why)."""


def _recording_column() -> Any:
    """``call_records.recording`` once the recordings' part adds it, else None."""
    return call_records.c.get("recording")


def _review_columns() -> list[Any]:
    c = call_records.c
    cols = [qa_samples, *(getattr(c, n).label(f"rec_{n}") for n in RECORD_COLUMNS)]
    rec = _recording_column()
    if rec is not None:
        cols.append(rec.label("rec_recording"))
    return cols


def _review(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    out: dict[str, Any] = {k: v for k, v in d.items() if not k.startswith("rec_")}
    out["drawn_at"] = aware(out["drawn_at"])
    record = {k[4:]: v for k, v in d.items() if k.startswith("rec_")}
    for k in ("started_at", "ended_at"):
        record[k] = aware(record.get(k))
    record.setdefault("recording", None)
    out["record"] = record if record.get("started_at") is not None else None
    return out


class QaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def answered_calls(self, start: dt.datetime, end: dt.datetime) -> list[CallRef]:
        """The answered calls with an agent that started in [start, end)."""
        c = call_records.c
        q = select(c.call_id, c.agent_id, c.queue, c.started_at).where(
            c.outcome == Outcome.ANSWERED.value, c.agent_id.is_not(None),
            c.started_at >= start.astimezone(dt.UTC), c.started_at < end.astimezone(dt.UTC))

        def read(conn: Connection) -> list[CallRef]:
            return [CallRef(r.call_id, r.agent_id, r.queue or "", aware(r.started_at).timestamp())
                    for r in conn.execute(q)]
        return await self.db.read(read)

    async def drawn_among(self, call_ids: Sequence[str]) -> set[str]:
        """Which of ``call_ids`` were drawn before (any week)."""
        ids = list(call_ids)

        def read(conn: Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(ids), 500):
                q = select(qa_samples.c.call_id).where(qa_samples.c.call_id.in_(ids[i:i + 500]))
                found |= {r[0] for r in conn.execute(q)}
            return found
        return await self.db.read(read)

    async def week_count(self, week: str) -> int:
        q = select(func.count()).select_from(qa_samples).where(qa_samples.c.week == week)
        return await self.db.read(lambda conn: int(conn.execute(q).scalar_one()))

    async def save_sample(self, sample: Sample, drawn_at: float,
                          options: DrawOptions | None = None, *, again: bool = False) -> int:
        """Keep the sample's calls and its draw with ``options`` (all or none);
        a call drawn before refuses it.  An empty sample keeps nothing."""
        if not sample.picks:
            return 0
        at = utc(drawn_at)
        draw = None if options is None else fit_row(qa_draws, {
            "week": sample.week, "drawn_at": at, "seed": sample.seed,
            "rate": None if options.rate is None else str(options.rate),
            "per_agent": options.per_agent, "min_one": options.at_least_one,
            "tz": options.tz, "reviewers": ",".join(options.reviewers), "again": again,
            "population": sample.population})
        rows = [fit_row(qa_samples, {
            "call_id": stored_id(p.call.call_id), "week": sample.week,
            "agent_id": p.call.agent_id, "queue": p.call.queue, "reviewer": p.reviewer,
            "drawn_at": at, "seed": sample.seed, "status": ASSIGNED})
            for p in sample.picks]

        def write(conn: Connection) -> int:
            if draw is not None:
                key = conn.execute(qa_draws.insert().values(**draw)).inserted_primary_key
                assert key is not None  # an insert of one row has its key
                draw_id = key[0]
                for r in rows:
                    r["draw_id"] = draw_id
            conn.execute(qa_samples.insert(), rows)
            return len(rows)
        try:
            return await self.db.transaction(write)
        except IntegrityError:
            raise QaStoreError("a call of this sample was drawn before (another draw ran at "
                               "the same time?); nothing was kept") from None

    async def draws(self, *, week: str | None = None,
                    ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Kept draws (of a week, or these ids), oldest first: the row with
        ``options`` (a :class:`DrawOptions`) and ``calls`` (its calls kept)."""
        d = qa_draws.c
        n = select(func.count()).where(qa_samples.c.draw_id == d.id).scalar_subquery()
        q = select(qa_draws, n.label("calls")).order_by(d.id)
        if week is not None:
            q = q.where(d.week == week)
        if ids is not None:
            q = q.where(d.id.in_(list(ids)))

        def read(conn: Connection) -> list[dict[str, Any]]:
            return [_draw(r) for r in conn.execute(q).mappings()]
        return await self.db.read(read)

    async def older_draws(self, week: str) -> dict[int, int]:
        """Calls of ``week`` drawn before the draws were kept (no ``draw_id``):
        seed -> calls."""
        s = qa_samples.c
        q = select(s.seed, func.count()).where(s.week == week, s.draw_id.is_(None)) \
            .group_by(s.seed).order_by(s.seed)
        return await self.db.read(lambda conn: {int(r[0]): int(r[1]) for r in conn.execute(q)})

    async def kept_picks(self, draw_id: int) -> dict[str, str]:
        """A draw's calls as kept: call id -> reviewer."""
        q = select(qa_samples.c.call_id, qa_samples.c.reviewer) \
            .where(qa_samples.c.draw_id == draw_id)
        return await self.db.read(lambda conn: {str(r[0]): str(r[1]) for r in conn.execute(q)})

    async def drawn_before_draw(self, draw_id: int, call_ids: Sequence[str]) -> set[str]:
        """Which of ``call_ids`` were drawn before draw ``draw_id`` (by an
        earlier draw, or before the draws were kept): what that draw left out."""
        ids = list(call_ids)
        s = qa_samples.c
        earlier = or_(s.draw_id < draw_id, s.draw_id.is_(None))

        def read(conn: Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(ids), 500):
                q = select(s.call_id).where(s.call_id.in_(ids[i:i + 500]), earlier)
                found |= {r[0] for r in conn.execute(q)}
            return found
        return await self.db.read(read)

    async def assignments(self, *, reviewer: str | None = None, week: str | None = None,
                          agent: str | None = None, status: str | None = None
                          ) -> list[dict[str, Any]]:
        """Drawn calls with their record, oldest call first."""
        s = qa_samples.c
        q = select(*_review_columns()).select_from(
            qa_samples.outerjoin(call_records, call_records.c.call_id == s.call_id))
        for col, value in ((s.reviewer, reviewer), (s.week, week), (s.agent_id, agent),
                           (s.status, status)):
            if value is not None:
                q = q.where(col == value)
        q = q.order_by(s.week, call_records.c.started_at, s.call_id)
        return await self.db.read(lambda conn: [_review(r) for r in conn.execute(q)])

    async def review(self, call_id: str) -> dict[str, Any] | None:
        """A drawn call: its sample row, record (None if it has none) and
        latest score (``score``: None before it is scored)."""
        cid = stored_id(call_id)
        q = select(*_review_columns()).select_from(
            qa_samples.outerjoin(call_records, call_records.c.call_id == qa_samples.c.call_id)
        ).where(qa_samples.c.call_id == cid)
        sq = select(qa_scores).where(qa_scores.c.call_id == cid) \
            .order_by(qa_scores.c.scored_at.desc(), qa_scores.c.id.desc()).limit(1)

        def read(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(q).first()
            if row is None:
                return None
            out = _review(row)
            sc = conn.execute(sq).mappings().first()
            out["score"] = _score_dict(sc) if sc is not None else None
            return out
        return await self.db.read(read)

    async def save_score(self, call_id: str, score: Score, *, reviewer: str, scored_at: float,
                         comment: str = "") -> None:
        """Keep a score of a drawn call and mark it scored."""
        cid = stored_id(call_id)
        row = fit_row(qa_scores, {
            "call_id": cid, "form": score.form, "form_version": score.form_version,
            "reviewer": reviewer, "scored_at": utc(scored_at), "score": score.score,
            "fatal": score.fatal, "passed": score.passed,
            "answers": json.dumps(score.answers_json(), ensure_ascii=False),
            "comment": comment})

        def write(conn: Connection) -> None:
            found = conn.execute(update(qa_samples).where(qa_samples.c.call_id == cid)
                                 .values(status=SCORED))
            if found.rowcount == 0:
                raise QaStoreError(f"call {call_id} is not in any sample (`acd qa sample` "
                                   "draws the calls to review)")
            conn.execute(qa_scores.insert().values(**row))
        await self.db.transaction(write)

    async def teams(self) -> dict[str, str]:
        """agent -> team: the agent's groups in the agents table (``a+b`` for
        several), for agents that have any."""
        q = select(agents_table.c.agent_id, agents_table.c.groups)

        def read(conn: Connection) -> dict[str, str]:
            out = {}
            for aid, groups in conn.execute(q):
                names = sorted(g for g in (groups or "").split(";") if g)
                if names:
                    out[aid] = "+".join(names)
            return out
        return await self.db.read(read)

    async def scored(self, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
                     agent: str | None = None, teams: dict[str, str] | None = None
                     ) -> list[ScoredCall]:
        """The latest score of every scored call whose call started in
        [since, until) (the sample's week and agent), oldest call first."""
        s, sc, c = qa_samples.c, qa_scores.c, call_records.c
        q = select(qa_scores, s.week, s.agent_id, s.queue, c.started_at.label("call_start")) \
            .select_from(qa_scores.join(qa_samples, s.call_id == sc.call_id)
                         .outerjoin(call_records, c.call_id == sc.call_id)) \
            .order_by(sc.scored_at, sc.id)
        if since is not None:
            q = q.where(c.started_at >= since.astimezone(dt.UTC))
        if until is not None:
            q = q.where(c.started_at < until.astimezone(dt.UTC))
        if agent is not None:
            q = q.where(s.agent_id == agent)

        def read(conn: Connection) -> list[tuple[Any, Any]]:
            return [(r, aware(r.call_start)) for r in conn.execute(q).mappings()]
        rows = await self.db.read(read)
        latest: dict[str, tuple[Any, Any]] = {}
        for r, start in rows:
            latest[r["call_id"]] = (r, start)
        teams = teams if teams is not None else await self.teams()
        ordered = sorted(latest.values(), key=lambda x: (x[1] or dt.datetime.min.replace(
            tzinfo=dt.UTC), x[0]["call_id"]))
        return [ScoredCall(
            call_id=r["call_id"], agent_id=r["agent_id"], queue=r["queue"],
            team=teams.get(r["agent_id"], "-"), week=r["week"],
            scored_at=aware(r["scored_at"]).timestamp(), score=r["score"],
            fatal=bool(r["fatal"]), answers=_answers(r["answers"]), form=r["form"],
            form_version=r["form_version"], passed=r["passed"], reviewer=r["reviewer"],
            comment=r["comment"]) for r, _ in ordered]


def _draw(m: Any) -> dict[str, Any]:
    d = dict(m)
    d["drawn_at"] = aware(d["drawn_at"])
    try:
        rate = Fraction(d["rate"]) if d["rate"] else None
    except (ValueError, ZeroDivisionError):
        rate = None
    d["options"] = DrawOptions(
        reviewers=tuple(r for r in (d["reviewers"] or "").split(",") if r), rate=rate,
        per_agent=d["per_agent"], at_least_one=bool(d["min_one"]), tz=d["tz"] or "")
    return d


def _answers(text: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)} \
        if isinstance(data, dict) else {}


def _score_dict(m: Any) -> dict[str, Any]:
    d = dict(m)
    d["scored_at"] = aware(d["scored_at"])
    d["answers"] = _answers(d["answers"])
    return d
