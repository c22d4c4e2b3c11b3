"""The agent's copy of their quality reviews: Markdown or HTML, and CSV
(docs/quality.md).  Pure: text out; the caller writes the files.

One document per agent: a summary (calls scored, mean score, fatal calls),
then per call its week, when it was scored, by whom, the score, every item's
answer (with the item's text when the form is given) and the reviewer's
comment.  The CSV has one line per call and item.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from collections.abc import Mapping, Sequence

from acd.qa.report import ScoredCall

__all__ = ["agent_csv", "agent_html", "agent_markdown"]


def _when(ts: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def _summary(calls: Sequence[ScoredCall]) -> tuple[int, float | None, int]:
    n = len(calls)
    return n, (sum(c.score for c in calls) / n if n else None), sum(c.fatal for c in calls)


def _md(text: str) -> str:
    """Text safe in a Markdown table cell or line: no pipes, no line breaks,
    no HTML."""
    return html.escape(text.replace("|", "\\|").replace("\r", " ").replace("\n", " "),
                       quote=False)


def agent_markdown(agent: str, calls: Sequence[ScoredCall], tz: dt.tzinfo,
                   items: Mapping[str, str] | None = None) -> str:
    """``items``: item id -> its text (a form's), shown beside the id."""
    n, mean, fatal = _summary(calls)
    lines = [f"# Quality reviews: {_md(agent)}", "",
             f"Calls scored: {n}; mean score: {'-' if mean is None else f'{mean:.1f}'}; "
             f"fatal: {fatal}", ""]
    for c in calls:
        lines += [f"## Call {_md(c.call_id)} ({_md(c.week)}, queue {_md(c.queue or '-')})", "",
                  f"Score **{c.score:.1f}**{' (fatal item failed)' if c.fatal else ''}"
                  f"{'' if c.passed is None else (', passed' if c.passed else ', not passed')}"
                  f"; form {_md(c.form)} v{_md(c.form_version)}; reviewed by "
                  f"{_md(c.reviewer)} on {_when(c.scored_at, tz)}", "",
                  "| item | answer | passed |", "|---|---|---|"]
        for item, a in c.answers.items():
            label = f"{item}: {items[item]}" if items and item in items else item
            passed = a.get("passed")
            lines.append(f"| {_md(label)} | {_md(str(a.get('answer', '')))} | "
                         f"{'-' if passed is None else ('yes' if passed else 'no')} |")
        lines += ["", f"Comment: {_md(c.comment) if c.comment else '-'}", ""]
    return "\n".join(lines)


def agent_html(agent: str, calls: Sequence[ScoredCall], tz: dt.tzinfo,
               items: Mapping[str, str] | None = None) -> str:
    e = html.escape
    n, mean, fatal = _summary(calls)
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Quality reviews: {e(agent)}</title>",
           "<style>body{font-family:sans-serif,'Noto Sans CJK SC'}table{border-collapse:"
           "collapse}td,th{border:1px solid #ccc;padding:2px 6px}.fatal{color:#b00}</style>",
           "</head><body>", f"<h1>Quality reviews: {e(agent)}</h1>",
           f"<p>Calls scored: {n}; mean score: {'-' if mean is None else f'{mean:.1f}'}; "
           f"fatal: {fatal}</p>"]
    for c in calls:
        out += [f"<h2>Call {e(c.call_id)} ({e(c.week)}, queue {e(c.queue or '-')})</h2>",
                f"<p>Score <b>{c.score:.1f}</b>"
                f"{' <span class=fatal>(fatal item failed)</span>' if c.fatal else ''}; "
                f"form {e(c.form)} v{e(c.form_version)}; reviewed by {e(c.reviewer)} on "
                f"{_when(c.scored_at, tz)}</p>",
                "<table><tr><th>item</th><th>answer</th><th>passed</th></tr>"]
        for item, a in c.answers.items():
            label = f"{item}: {items[item]}" if items and item in items else item
            passed = a.get("passed")
            out.append(f"<tr><td>{e(label)}</td><td>{e(str(a.get('answer', '')))}</td>"
                       f"<td>{'-' if passed is None else ('yes' if passed else 'no')}</td></tr>")
        out += ["</table>", f"<p>Comment: {e(c.comment) if c.comment else '-'}</p>"]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """A text cell a spreadsheet shows as text (not a formula)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def agent_csv(calls: Sequence[ScoredCall], tz: dt.tzinfo) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["call_id", "week", "queue", "scored_at", "reviewer", "form", "form_version",
                "score", "fatal", "item", "answer", "passed", "comment"])
    for c in calls:
        for item, a in c.answers.items():
            passed = a.get("passed")
            w.writerow([c.call_id, c.week, c.queue, _when(c.scored_at, tz), c.reviewer, c.form,
                        c.form_version, f"{c.score:.2f}", int(c.fatal), item,
                        _cell(str(a.get("answer", ""))),
                        "" if passed is None else int(bool(passed)), _cell(c.comment)])
    return buf.getvalue()
