"""The quality reviewer's pages on the control listener (docs/quality.md).

    GET  /qa[?reviewer=R&week=W&status=assigned]   admin  the calls to review (HTML)
    GET  /qa/{call_id}[?reviewer=R]                admin  the record, the recording, the form
    GET  /qa/{call_id}/recording                   admin  the recording's file
    POST /qa/{call_id}/score                       admin  the form's answers (urlencoded)
    GET  /qa/static/{qa.css|qa.js}                 read   the pages' style and script
    POST /qa/sign-in, /qa/sign-out   (acd.api.auth.Guard: the sign-in form, the sign-out)

The role is ``admin`` (the API has no supervisor role yet: a leftover of
issue 15).  A reviewer's browser without the cookie gets a sign-in form
(401, :func:`acd.api.auth.sign_in_page`); the admin token typed there is
posted to ``/qa/sign-in`` (never in a URL: ``GET /qa?token=`` is refused),
answered with a cookie for the ``/qa`` paths only (:data:`acd.api.auth.QA`,
12 hours) and a redirect to the page asked for; the cookie lets in GETs of
``/qa`` and under it, and the score's and the sign-out's POSTs from this
server's own page (Origin or Referer), nothing else.  Every page has a
sign-out button.  The style and script are under ``/qa/static/`` so that
the cookie (``Path=/qa``) covers them.

A score that does not fit the form is answered 400 with the page
again, the problems listed and the answers kept; a good one is kept and
answered 303 back to the call's page.  A recording is served only from
``recordings.local_dir`` (the PBX's recordings folder as this host sees
it): the record's path less the PBX's folder (``recordings.dir``), or a
path relative to ``local_dir``, must resolve (symbolic links followed)
inside it, else 403.

The pages need the engine's database (``engine.db``), the recordings folder
(``engine.config.recordings.local_dir``), a scoring form
(``engine.config.qa.form``: ``qa.form`` of acd.yaml, else ``qa_form.yaml``
beside it, else the example form shipped in the package, checked when
acd.yaml is loaded) and the zone the times are shown in
(``engine.config.qa.zone``: ``statistics.tz``, else the machine's); each can
be given to :class:`QaPages` instead (tests).  Without a database the pages
answer 404; a form that cannot be used (changed or removed since the start)
503, naming the file and the problem, logged once a minute at most.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import mimetypes
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from acd.adapters.qa_store import QaStore, QaStoreError
from acd.adapters.storage import Database
from acd.api.config import Role
from acd.api.requests import ApiError, Handler
from acd.logs import Limited
from acd.qa.forms import EXAMPLE_FORM, FORM_FILE, Form, FormError, Item, load_form
from acd.qa.sample import SampleError, resolve_week
from acd.qa.scoring import COMMENT_MAX, AnswerError, score

__all__ = ["QaPages"]

STATIC = Path(__file__).with_name("static")
ASSETS = {"qa.css": "text/css", "qa.js": "text/javascript"}
#: the route of the style and script: only their names, so that a call whose
#: id is ``static`` keeps its recording's route (``/qa/static/recording``)
ASSETS_ROUTE = r"/qa/static/{name:qa\.(?:css|js)}"
#: a form that cannot be used is logged once a minute at most
FORM_LOG_EVERY_S = 60.0
AUDIO_TYPES = {".wav": "audio/wav", ".gsm": "audio/x-gsm", ".mp3": "audio/mpeg",
               ".ogg": "audio/ogg", ".opus": "audio/ogg", ".sln": "audio/basic"}
REVIEWER_MAX = 64
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self'; object-src 'none'; "
                               "img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}

e = html.escape
log = logging.getLogger(__name__)


def _html(body: str, title: str, status: int = 200) -> web.Response:
    page = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)}</title><link rel=\"icon\" href=\"data:,\">"
            "<link rel=\"stylesheet\" href=\"/qa/static/qa.css\">"
            "<script src=\"/qa/static/qa.js\" defer></script></head>\n<body>\n"
            "<form method=\"post\" action=\"/qa/sign-out\" class=\"sign-out\">"
            "<button type=\"submit\">sign out</button></form>\n"
            f"{body}\n</body></html>\n")
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8",
                        headers=_HEADERS)


def _error_page(status: int, message: str) -> web.Response:
    return _html(f"<h1>{status}</h1><p class=\"error\">{e(message)}</p>"
                 "<p><a href=\"/qa\">calls to review</a></p>", "quality review", status)


def _time(value: Any, tz: dt.tzinfo) -> str:
    """An instant in ``tz``, formatted here (not by the browser's locale):
    ``2026-12-02 14:45:54``; the page names the zone (:func:`_zone_note`)."""
    if value is None:
        return "-"
    local = value.astimezone(tz)
    iso = local.isoformat(timespec="seconds")
    return f"<time datetime=\"{e(iso)}\">{local:%Y-%m-%d %H:%M:%S}</time>"


def zone_name(tz: dt.tzinfo) -> str:
    """``Asia/Shanghai`` (a zone's key), else its name (``UTC``, ``UTC+08:00``)."""
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else str(tz)


def _zone_note(tz: dt.tzinfo) -> str:
    return f"<p class=\"zone\">times in {e(zone_name(tz))}</p>"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _secs(value: Any) -> str:
    return "-" if value is None else f"{value:.0f} s"


def _q(**params: str | None) -> str:
    kept = {k: v for k, v in params.items() if v}
    return "?" + urllib.parse.urlencode(kept) if kept else ""


class QaPages:
    """The QA routes (:meth:`routes`) for :class:`acd.api.control.ControlApi`."""

    def __init__(self, engine: object, *, db: Database | None = None,
                 recordings_dir: str | Path | None = None, pbx_folder: str | None = None,
                 form_file: str | Path | None = None, zone: dt.tzinfo | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.engine = engine
        self._db = db
        self._recordings = Path(recordings_dir) if recordings_dir is not None else None
        self._pbx_folder = pbx_folder
        self._form_file = Path(form_file) if form_file is not None else None
        self._zone = zone
        self._clock = clock
        self._store: QaStore | None = None
        self._form: tuple[Path, float, Form] | None = None
        self._form_problems = Limited(FORM_LOG_EVERY_S)

    def routes(self) -> list[tuple[str, str, Handler, Role]]:
        admin = Role.ADMIN
        return [("GET", ASSETS_ROUTE, self.asset, Role.READ),
                ("GET", "/qa", self.list_page, admin),
                ("GET", "/qa/{call_id}", self.call_page, admin),
                ("GET", "/qa/{call_id}/recording", self.recording, admin),
                ("POST", "/qa/{call_id}/score", self.post_score, admin)]

    # ------------------------------------------------------------ wiring

    def _now(self) -> float:
        clock = self._clock or getattr(self.engine, "clock", None)
        return float(clock()) if callable(clock) else time.time()

    def store(self) -> QaStore:
        if self._store is None:
            db = self._db if self._db is not None else getattr(self.engine, "db", None)
            if not isinstance(db, Database):
                raise ApiError(404, "quality review needs the engine's database")
            self._store = QaStore(db)
        return self._store

    def recordings_dir(self) -> Path | None:
        if self._recordings is not None:
            return self._recordings
        config = getattr(self.engine, "config", None)
        rec = getattr(config, "recordings", None)
        local = getattr(rec, "local_dir", None)
        return Path(local) if local else None

    def pbx_folder(self) -> str | None:
        """The recordings' folder on the PBX (``recordings.dir``): the
        part of a record's path that ``local_dir`` stands for."""
        if self._pbx_folder is not None:
            return self._pbx_folder
        rec = getattr(getattr(self.engine, "config", None), "recordings", None)
        folder = getattr(getattr(rec, "rule", None), "folder", None)
        return folder if isinstance(folder, str) else None

    def zone(self) -> dt.tzinfo:
        """The zone the times are shown in: given, else ``config.qa.zone``
        (``statistics.tz``, else the machine's, as read at the start), else
        ``statistics.tz``, else UTC."""
        if self._zone is not None:
            return self._zone
        config = getattr(self.engine, "config", None)
        configured = getattr(getattr(config, "qa", None), "zone", None)
        if isinstance(configured, dt.tzinfo):
            return configured
        name = getattr(getattr(config, "statistics", None), "tz", None)
        if isinstance(name, str) and name:
            from acd.ivr.hours import HoursError
            from acd.ivr.hours import zone as named

            try:
                return named(name)
            except HoursError:
                pass
        return dt.UTC

    def form_path(self) -> Path:
        """The scoring form's file: given, else ``config.qa.form`` (acd.yaml's
        ``qa.form``, else qa_form.yaml beside it, else the package's example),
        else qa_form.yaml here if there is one, else the package's example."""
        if self._form_file is not None:
            return self._form_file
        configured = getattr(getattr(getattr(self.engine, "config", None), "qa", None),
                             "form", None)
        if isinstance(configured, str | Path):
            return Path(configured)
        here = Path(FORM_FILE)
        return here if here.is_file() else EXAMPLE_FORM

    def form(self) -> Form:
        """The scoring form, read again when its file changes
        (:class:`FormError`: it cannot be used, ``file:line:col: problem``)."""
        path = self.form_path()
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = -1.0
        if self._form is None or self._form[0] != path or self._form[1] != mtime:
            self._form = (path, mtime, load_form(path))
        return self._form[2]

    # ------------------------------------------------------------- pages

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise ApiError(404, f"no such file: {name[:40]}")
        data = await asyncio.to_thread((STATIC / name).read_bytes)
        return web.Response(body=data, content_type=ASSETS[name], charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff",
                                     "Cache-Control": "max-age=300"})

    async def list_page(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        reviewer, week = q.get("reviewer") or None, q.get("week") or None
        status = q.get("status") or None
        if status not in (None, "assigned", "scored"):
            return _error_page(400, "status is assigned or scored")
        tz = self.zone()
        if week is not None:
            try:
                week = resolve_week(week, self._now(), tz)
            except SampleError as exc:
                return _error_page(400, str(exc))
        rows = await self.store().assignments(reviewer=reviewer, week=week, status=status)
        out = [f"<h1>Calls to review{' — ' + e(reviewer) if reviewer else ''}</h1>",
               "<form method=\"get\" action=\"/qa\" class=\"filters\">"
               f"<label>reviewer <input name=\"reviewer\" value=\"{e(reviewer or '')}\"></label> "
               f"<label>week <input name=\"week\" value=\"{e(week or '')}\" "
               "placeholder=\"2026-W48, this, last\"></label> "
               "<label>status <select name=\"status\"><option value=\"\">any</option>"
               + "".join(f"<option{' selected' if status == s else ''}>{s}</option>"
                         for s in ("assigned", "scored"))
               + "</select></label> <button>show</button></form>",
               f"<p>{_plural(len(rows), 'call')}</p>", _zone_note(tz),
               "<table class=\"calls\"><tr><th>call</th><th>week</th><th>started</th>"
               "<th>queue</th><th>agent</th><th>wait</th><th>talk</th><th>reviewer</th>"
               "<th>status</th></tr>"]
        for r in rows:
            rec = r["record"] or {}
            link = f"/qa/{urllib.parse.quote(r['call_id'], safe='')}" \
                   f"{_q(reviewer=reviewer or r['reviewer'])}"
            out.append(f"<tr class=\"{e(r['status'])}\"><td><a href=\"{e(link)}\">"
                       f"{e(r['call_id'])}</a></td><td>{e(r['week'])}</td>"
                       f"<td>{_time(rec.get('started_at'), tz)}</td>"
                       f"<td>{e(r['queue'] or '-')}</td>"
                       f"<td>{e(r['agent_id'])}</td><td>{_secs(rec.get('wait_s'))}</td>"
                       f"<td>{_secs(rec.get('talk_s'))}</td><td>{e(r['reviewer'])}</td>"
                       f"<td>{e(r['status'])}</td></tr>")
        out.append("</table>")
        return _html("\n".join(out), "calls to review")

    async def _found(self, call_id: str) -> dict[str, Any]:
        found = await self.store().review(call_id)
        if found is None:
            raise _NotFound(f"call {call_id} is not in any sample")
        return found

    async def _call_and_form(self, call_id: str) -> tuple[dict[str, Any], Form] | web.Response:
        """The drawn call and the scoring form, or the page saying why not
        (404: the call is not drawn; 503: the form cannot be used, logged
        once a minute at most)."""
        try:
            return await self._found(call_id), await asyncio.to_thread(self.form)
        except _NotFound as exc:
            return _error_page(404, str(exc))
        except FormError as exc:
            self._form_problems.warning(
                log, "qa-form", "quality review: the scoring form cannot be used, the call "
                "pages answer 503: %s (acd.yaml qa.form names the form)", exc)
            return _error_page(503, f"the scoring form cannot be used: {exc} (fix the file, "
                               "or name another one in acd.yaml: qa: {form: PATH}; it is "
                               "read again when it changes)")

    async def call_page(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        got = await self._call_and_form(call_id)
        if isinstance(got, web.Response):
            return got
        found, form = got
        reviewer = request.query.get("reviewer") or found["reviewer"]
        last = found["score"]
        given = {k: str(v.get("answer", "")) for k, v in (last or {}).get("answers", {}).items()}
        body = self._call_body(found, form, reviewer, given,
                               (last or {}).get("comment", ""), [],
                               saved=request.query.get("saved") == "1")
        return _html(body, f"review {call_id}")

    def _call_body(self, found: dict[str, Any], form: Form, reviewer: str,
                   given: Mapping[str, str], comment: str, problems: list[str],
                   saved: bool = False) -> str:
        call_id = found["call_id"]
        quoted = urllib.parse.quote(call_id, safe="")
        rec = found["record"] or {}
        tz = self.zone()
        out = ["<p><a href=\"/qa" + e(_q(reviewer=reviewer)) + "\">← calls to review</a></p>",
               f"<h1>Call {e(call_id)}</h1>", _zone_note(tz),
               "<div class=\"review\"><section class=\"record\">",
               "<h2>Record</h2><table class=\"record\">"]
        for label, value in (("week", e(found["week"])),
                             ("started", _time(rec.get("started_at"), tz)),
                             ("ended", _time(rec.get("ended_at"), tz)),
                             ("queue", e(found["queue"] or "-")),
                             ("class", e(rec.get("customer_class") or "-")),
                             ("wait", _secs(rec.get("wait_s"))),
                             ("talk", _secs(rec.get("talk_s"))),
                             ("agent", e(found["agent_id"])),
                             ("caller", e(rec.get("caller") or "-")),
                             ("assigned to", e(found["reviewer"])),
                             ("status", e(found["status"]))):
            out.append(f"<tr><th>{label}</th><td>{value}</td></tr>")
        out.append("</table>")
        recording = rec.get("recording")
        if recording:
            out.append(f"<p class=\"path\">{e(recording)}</p>"
                       f"<audio controls preload=\"metadata\" src=\"/qa/{e(quoted)}/recording\">"
                       "</audio><p class=\"speed\"></p>")
        else:
            out.append("<p class=\"none\">no recording for this call</p>")
        last = found.get("score")
        if last:
            out.append(f"<p class=\"last\">last score {last['score']:.1f}"
                       f"{' (fatal)' if last['fatal'] else ''} by {e(last['reviewer'])}, "
                       f"{_time(last['scored_at'], tz)}</p>")
        out.append("</section><section class=\"form\">")
        if saved:
            out.append("<p class=\"saved\">score saved</p>")
        if problems:
            out.append("<div class=\"error\"><p>The score was not saved:</p><ul>"
                       + "".join(f"<li>{e(p)}</li>" for p in problems) + "</ul></div>")
        out.append(f"<h2>{e(form.title)} <small>{e(form.name)} v{e(form.version)}</small></h2>"
                   f"<form method=\"post\" action=\"/qa/{e(quoted)}/score\" id=\"score\">"
                   f"<input type=\"hidden\" name=\"form\" value=\"{e(form.name)}\">"
                   f"<input type=\"hidden\" name=\"form_version\" value=\"{e(form.version)}\">")
        for section in form.sections:
            out.append(f"<fieldset><legend>{e(section.title)}</legend>")
            for item in section.items:
                out.append(self._item(item, given.get(item.id)))
            out.append("</fieldset>")
        out.append(f"<label class=\"reviewer\">reviewer <input name=\"reviewer\" required "
                   f"maxlength=\"{REVIEWER_MAX}\" value=\"{e(reviewer)}\"></label>"
                   f"<label class=\"comment\">comment for the agent<textarea name=\"comment\" "
                   f"maxlength=\"{COMMENT_MAX}\" rows=\"4\">{e(comment)}</textarea></label>"
                   "<button type=\"submit\">save the score</button></form></section></div>")
        return "\n".join(out)

    @staticmethod
    def _item(item: Item, chosen: str | None) -> str:
        name = f"item.{item.id}"
        values = ["yes", "no"] if item.kind == "yes_no" else [str(v) for v in
                                                               range(item.max + 1)]
        if item.na:
            values.append("na")
        flags = "".join(f" <span class=\"{f}\">{f}</span>" for f, on in
                        (("fatal", item.fatal),) if on)
        radios = "".join(
            f"<label><input type=\"radio\" name=\"{e(name)}\" value=\"{v}\""
            f"{' checked' if chosen is not None and chosen.lower() == v else ''}> "
            f"{'N/A' if v == 'na' else v}</label>" for v in values)
        return (f"<div class=\"item\" data-item=\"{e(item.id)}\"><p>{e(item.text)} "
                f"<small>({e(item.id)}, weight {item.weight:g})</small>{flags}</p>"
                f"<div class=\"answers\">{radios}</div></div>")

    async def post_score(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" \
                and urllib.parse.urlsplit(origin).netloc != request.host:
            raise ApiError(403, "forbidden: a form posted from another site")
        got = await self._call_and_form(call_id)
        if isinstance(got, web.Response):
            return got
        found, form = got
        data = await request.post()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        reviewer = fields.get("reviewer", "").strip()
        comment = fields.get("comment", "").replace("\r\n", "\n")
        answers = {k[5:]: v for k, v in fields.items() if k.startswith("item.")}
        problems: list[str] = []
        if not reviewer:
            problems.append("reviewer: who scores the call is needed")
        elif len(reviewer) > REVIEWER_MAX:
            problems.append(f"reviewer: at most {REVIEWER_MAX} characters")
        elif reviewer == found["agent_id"]:
            problems.append(f"reviewer: {reviewer} took this call; nobody scores their own "
                            "calls")
        if len(comment) > COMMENT_MAX:
            problems.append(f"comment: at most {COMMENT_MAX} characters")
        posted = fields.get("form")
        if posted is not None and (posted, fields.get("form_version")) != (form.name,
                                                                            form.version):
            problems.append(f"the form changed while the page was open (now {form.name} "
                            f"v{form.version}): check the answers and save again")
        result = None
        try:
            result = score(form, answers)
        except AnswerError as exc:
            problems += exc.problems
        if problems or result is None:
            body = self._call_body(found, form, reviewer or found["reviewer"], answers, comment,
                                   problems)
            return _html(body, f"review {call_id}", status=400)
        try:
            await self.store().save_score(call_id, result, reviewer=reviewer,
                                          scored_at=self._now(), comment=comment)
        except QaStoreError as exc:
            return _error_page(409, str(exc))
        where = f"/qa/{urllib.parse.quote(call_id, safe='')}" \
                f"{_q(reviewer=reviewer, saved='1')}"
        return web.Response(status=303, headers={"Location": where, **_HEADERS})

    async def recording(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        try:
            found = await self._found(call_id)
        except _NotFound as exc:
            raise ApiError(404, str(exc)) from None
        recording = (found["record"] or {}).get("recording")
        if not recording:
            raise ApiError(404, f"call {call_id} has no recording")
        base = self.recordings_dir()
        if base is None:
            raise ApiError(404, "recordings.local_dir is not set: recordings cannot be played")
        path = await asyncio.to_thread(_inside, base, str(recording), self.pbx_folder())
        if path is None:
            raise ApiError(403, f"forbidden: the recording of call {call_id} is not inside "
                                "recordings.local_dir")
        if not await asyncio.to_thread(path.is_file):
            raise ApiError(404, f"the recording of call {call_id} is not in "
                                "recordings.local_dir (yet)")
        kind = AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
            or "application/octet-stream"
        return web.FileResponse(path, headers={"Content-Type": kind,
                                               "X-Content-Type-Options": "nosniff",
                                               "Cache-Control": "no-store"})


class _NotFound(Exception):
    pass


def _inside(base: Path, recording: str, pbx_folder: str | None = None) -> Path | None:
    """The recording's file in ``base`` (``recordings.local_dir``): the
    record's path less the PBX's folder (``recordings.dir``), or a path
    relative to ``base``, or an absolute one in it; None unless it resolves
    inside ``base`` (symbolic links followed)."""
    if "\x00" in recording:
        return None
    root = base.resolve()
    candidate = Path(recording)
    if pbx_folder and candidate.is_absolute():
        folder = Path(pbx_folder)
        if candidate.is_relative_to(folder):
            candidate = candidate.relative_to(folder)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    return path if path.is_relative_to(root) and path != root else None
