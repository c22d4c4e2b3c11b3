"""``acd flow ...``: tools for IVR designers (no phone, no Asterisk needed).

    acd flow validate FILE...            load and check; problems with file:line:col
    acd flow graph FILE -o out.svg       a picture (.svg, .png; .dot, .mmd)
    acd flow run FILE --keys 1,2,#       a dry run in the terminal
    acd flow test FILE...                the YAML test cases
    acd flow reload                      the running engine reloads its flow
    acd flow schema -o flow.schema.json  the JSON Schema for editors

Exit codes: ``validate`` and ``test`` 1 when a file has a problem (or a case
fails: what they look for), 2 when a file cannot be read or parsed at all
(missing, not UTF-8, not YAML, over a size, nesting or alias bound);
``graph`` and ``run`` 2 when the flow cannot be loaded; every command 2 when
the file of an option (``--routing``, ``--config``) is wrong.  Every message
names the file, the line and the column.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from acd.cli.common import api_option
from acd.cli.common import shown as out  # rich markup AND control characters escaped
from acd.ivr.checks import check_flow
from acd.ivr.load import load_flow
from acd.ivr.nodes import Flow
from acd.ivr.parse import FlowError, parse_flow
from acd.ivr.saying import COMPOSED_LANGUAGES
from acd.loaders.yamlpos import read_text

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never wrap file:line: messages


def _known_queues(routing: Path | None, config: Path | None,
                  queues: str | None) -> set[str] | None:
    if queues:
        return {q.strip() for q in queues.split(",") if q.strip()}
    if routing is not None:
        from acd.loaders.routing import PolicyError, load_policy
        try:
            policy = load_policy(routing)
        except PolicyError as exc:
            err_console.print(f"[red]✗[/red] {out(exc)}")
            sys.exit(2)
        targets = {v for r in policy.routes for t in r.when.tests if t.attr == "ivr_queue"
                   for v in t.values}
        return set(policy.queues) | targets
    if config is not None:
        from acd.runtime.settings import ConfigError, load_config
        try:
            cfg = load_config(config)
        except (ConfigError, FlowError) as exc:
            err_console.print(f"[red]✗[/red] {out(exc)}")
            sys.exit(2)
        return set(cfg.known_queues or ())
    return None


def _load(file: Path) -> Flow:
    try:
        return load_flow(file)
    except FlowError as exc:
        err_console.print(f"[red]error:[/red] {out(exc)}")
        sys.exit(2)  # the file cannot be used, as for serve and demo


@click.group()
def flow() -> None:
    """IVR flow tools: validate, graph, run, test, reload, schema."""


@flow.command("validate")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--routing", type=click.Path(dir_okay=False, path_type=Path),
              help="Routing file: queues not defined there are errors.")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="Engine configuration: its queues (and routing) are the known ones.")
@click.option("--queues", help="Known queues, comma-separated.")
@click.option("--sounds", type=click.Path(file_okay=False, path_type=Path),
              help="Asterisk sounds folder: prompts missing there (where Asterisk looks; "
                   "with the number prompts of `say_composed`, from --config) are errors.")
@click.option("--strict", is_flag=True, help="Warnings count as errors.")
def flow_validate(files: tuple[Path, ...], routing: Path | None, config: Path | None,
                  queues: str | None, sounds: Path | None, strict: bool) -> None:
    """Check flow files: every problem with file, line and column.

    Exit status 1 when any file has an error (or, with --strict, a warning);
    2 when a file cannot be read or parsed at all (missing, not UTF-8, not
    YAML, over a bound).
    """
    known = _known_queues(routing, config, queues)
    compose: Sequence[str] = COMPOSED_LANGUAGES
    if config is not None and sounds is not None:
        from acd.runtime.settings import ConfigError, load_config
        try:
            compose = load_config(config).say_composed
        except (ConfigError, FlowError) as exc:
            err_console.print(f"[red]✗[/red] {out(exc)}")
            sys.exit(2)
    bad = unreadable = 0
    for f in files:
        try:
            text, name = read_text(f, FlowError, "flow file")
            fl = parse_flow(text, name)
        except FlowError as exc:
            bad += 1
            unreadable += exc.unreadable
            err_console.print(f"[red]✗[/red] {out(exc)}")
            continue
        problems = check_flow(fl, known, sounds, compose=compose)
        errors = [p for p in problems if p.severity == "error"]
        for p in problems:
            colour = "red" if p.severity == "error" else "yellow"
            err_console.print(f"[{colour}]{'✗' if p.severity == 'error' else '!'}[/{colour}] "
                              f"{out(p)}")
        if errors or (strict and problems):
            bad += 1
            continue
        console.print(f"[green]✓[/green] {f}: flow {fl.name!r}"
                      + (f" version {fl.version}" if fl.version else "")
                      + f", {len(fl.nodes)} nodes, queues: {', '.join(sorted(fl.queues)) or '-'}"
                      + (f", {len(problems)} warning(s)" if problems else ""), soft_wrap=True)
    if bad:
        sys.exit(2 if unreadable else 1)


@flow.command("graph")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Picture to write: .svg, .png (these two need the plot extra), .dot or "
                   ".mmd (Mermaid).  Without it (or with -), the text is printed.")
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "mmd", "svg", "png"],
                                                   case_sensitive=False),
              help="The format, whatever the file's extension.")
def flow_graph(file: Path, output: Path | None, fmt: str | None) -> None:
    """Draw FILE as a picture a designer can read (no Graphviz needed).

    \b
    acd flow graph FILE -o flow.svg          a drawing (.svg or .png)
    acd flow graph FILE -o flow.mmd          Mermaid, which GitHub and editors draw
    acd flow graph FILE --format mermaid     the same, printed
    acd flow graph FILE -o flow.dot          Graphviz DOT
    """
    from acd.ivr.graph import TEXT_FORMATS, picture_format, to_text

    to_stdout = output is None or str(output) == "-"
    if to_stdout and fmt is None:
        raise click.UsageError("give -o FILE (.svg, .png, .dot, .mmd) or --format "
                               "dot|mermaid to print the text")
    try:
        kind = picture_format(None if to_stdout else output, fmt)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--output") from None
    if to_stdout and kind not in TEXT_FORMATS:
        raise click.BadParameter(f"a .{kind} picture goes to a file: give -o FILE",
                                 param_hint="--format")
    fl = _load(file)
    if to_stdout:
        click.echo(to_text(fl, kind), nl=False)
        return
    assert output is not None
    if kind in TEXT_FORMATS:
        output.write_text(to_text(fl, kind), encoding="utf-8")
    else:
        from acd.plot import PlotUnavailable
        from acd.plot.draw import render

        try:
            render(fl, output, kind)
        except PlotUnavailable as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(2)
    console.print(f"wrote {escape(str(output))} ({len(fl.nodes)} nodes)", soft_wrap=True)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{v!r} is not name=value", param_hint=what)
        out[k.strip()] = val.strip()
    return out


@flow.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--caller", default="13800138000", show_default=True, help="Caller's number.")
@click.option("--keys", default="", help="Keys, one entry per prompt that listens, e.g. "
              "1,2,# or 2,12345678# for an input (an empty entry presses nothing).")
@click.option("--profile", "profile", multiple=True, metavar="NAME=VALUE",
              help="The caller's profile: a column of the customers table, read as "
                   "an import reads it (caller.NAME), e.g. --profile vip_level=2.")
@click.option("--at", "at", metavar="TIME", help="When the call happens, e.g. "
              "2026-11-23T21:30+08:00 (default: now).")
@click.option("--lookup", "lookups", multiple=True, metavar="NODE=JSON|error",
              help="What a lookup node finds, e.g. --lookup balance='{\"balance\": 12.5}'.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def flow_run(file: Path, caller: str, keys: str, profile: tuple[str, ...], at: str | None,
             lookups: tuple[str, ...], as_json: bool) -> None:
    """Dry-run FILE: the prompts it would play, the keys it took, the path and
    where the call ends."""
    from acd.ivr.dryrun import dry_run
    from acd.ivr.interpreter import EnterQueue

    fl = _load(file)
    when = dt.datetime.now(dt.UTC)
    if at:
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            raise click.BadParameter(f"{at!r} is not a time like 2026-11-23T21:30+08:00",
                                     param_hint="--at") from None
        if when.tzinfo is None:
            raise click.BadParameter(f"{at!r} needs a UTC offset, e.g. +08:00",
                                     param_hint="--at")
    answers: dict[str, dict[str, object] | None] = {}
    for node, text in _pairs(lookups, "--lookup").items():
        if node not in fl.nodes:
            raise click.BadParameter(f"no node {node!r} in {file}", param_hint="--lookup")
        if text == "error":
            answers[node] = None
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"{node}: not JSON ({exc})", param_hint="--lookup") \
                from None
        if not isinstance(data, dict):
            raise click.BadParameter(f"{node}: give a JSON object", param_hint="--lookup")
        answers[node] = data
    attrs: dict[str, str] | None = None
    if profile:
        from acd.loaders.profile_fields import FieldError, caller_attributes
        try:  # shaped as the engine's caller lookup gives it (vip_level "2")
            attrs = caller_attributes(_pairs(profile, "--profile"), caller)
        except FieldError as exc:
            raise click.BadParameter(str(exc), param_hint="--profile") from None
        attrs.pop("number", None)  # the caller's number is --caller
    result = dry_run(fl, keys.split(",") if keys else [], caller, attrs, when, answers)
    if as_json:
        end: dict[str, Any] = {"kind": type(result.end).__name__, "node": result.end_node}
        for attr in ("queue", "priority", "number", "mailbox", "reason"):
            if hasattr(result.end, attr):
                end[attr] = getattr(result.end, attr)
        if isinstance(result.end, EnterQueue):
            end["attributes"] = dict(result.end.attributes)
        click.echo(json.dumps({
            "flow": fl.name, "version": fl.version, "caller": caller,
            "steps": [{"kind": s.kind, "node": s.node, "text": s.text} for s in result.steps],
            "path": list(result.path), "end": end, "variables": result.variables,
            "sms": list(result.sms), "keys_left": list(result.keys_left)},
            ensure_ascii=False, indent=2, default=str))
        return
    console.print(f"call from {out(caller)} into flow {out(repr(fl.name))}"
                  + (f" version {out(fl.version)}" if fl.version else "")
                  + f" at {when.isoformat(timespec='minutes')}", soft_wrap=True)
    marks = {"play": "♪", "say": "♪", "ask": "?", "input": "?", "key": "⌨", "queue": "→",
             "hangup": "✖", "transfer": "↗", "voicemail": "✉", "language": "文",
             "lookup": "⇄", "record": "●"}
    for step in result.steps:
        console.print(f"  {marks.get(step.kind, '·')} [dim]{out(step.node)}[/dim] "
                      f"{out(step.text)}", soft_wrap=True, highlight=False)
    console.print(f"path: {out(' > '.join(result.path))}", soft_wrap=True, highlight=False)
    shown = {k: v for k, v in result.variables.items() if v is not None}
    if shown:
        console.print("variables: " + out(", ".join(f"{k}={v}" for k, v in shown.items())),
                      soft_wrap=True, highlight=False)
    if result.sms:
        console.print(f"SMS after hangup: {out(', '.join(result.sms))}")
    if result.keys_left:
        console.print(f"[yellow]keys not used:[/yellow] {out(','.join(result.keys_left))}")


@flow.command("test")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="Show every case, not only failures.")
def flow_test(files: tuple[Path, ...], verbose: bool) -> None:
    """Run flow test cases.  FILE is a test file (flow: + cases:), or a flow
    whose tests sit beside it as NAME.tests.yaml.

    Exit status 1 when a case fails or a file has a problem; 2 when a file
    cannot be read or parsed at all."""
    from acd.ivr.flowtest import FlowTestError, load_tests, run_tests, tests_for

    failed = total = unreadable = 0
    for f in files:
        path = f
        if not f.name.endswith(".tests.yaml") and tests_for(f).exists():
            path = tests_for(f)
        try:
            tests = load_tests(path)
        except FlowTestError as exc:
            err_console.print(f"[red]✗[/red] {out(exc)}")
            failed += 1
            unreadable += exc.unreadable
            continue
        try:
            fl = load_flow(tests.flow_file)
        except FlowError as exc:
            unreadable += exc.unreadable
            if exc.line == 0:  # the flow file as a whole: placed where the tests name it
                line, column = tests.flow_at
                exc = FlowError(tests.file, line, column, f"flow: {exc.problem}: {exc.file}")
            err_console.print(f"[red]✗[/red] {out(exc)}")
            failed += 1
            continue
        for res in run_tests(tests, fl):
            total += 1
            where = f"{path}:{res.case.line}"
            if res.passed:
                if verbose:
                    console.print(f"[green]✓[/green] {out(where)} {out(res.case.name)}",
                                  soft_wrap=True)
                continue
            failed += 1
            err_console.print(f"[red]✗[/red] {out(where)} {out(res.case.name)}")
            for msg in res.failures:
                err_console.print(f"    {out(msg)}")
    if failed:
        err_console.print(f"[red]{failed} failed[/red] of {total} case(s)")
        sys.exit(2 if unreadable else 1)
    console.print(f"[green]{total} case(s) passed[/green]")


@flow.command("reload")
@api_option
def flow_reload(api: str | None) -> None:
    """Ask the running engine to reload its flow.  New calls take the new
    version; calls in progress finish on theirs; a flow that fails the
    checks is refused and the old one stays."""
    from acd.cli.common import call_api

    result = call_api(api, lambda c: c.post("/flow/reload"))
    if result.get("ok"):
        console.print(f"[green]✓[/green] reloaded: version {result.get('version')!r}"
                      + ("" if result.get("changed") else " (no change)"))
        for w in result.get("warnings", []):
            err_console.print(f"[yellow]![/yellow] {out(w)}")
        return
    for p in result.get("problems", []):
        err_console.print(f"[red]✗[/red] {out(p)}")
    err_console.print(f"refused; the engine keeps version {result.get('version')!r}")
    sys.exit(1)


@flow.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of printing.")
def flow_schema_cmd(output: Path | None) -> None:
    """The JSON Schema of flow files, for editors."""
    from acd.ivr.schema import flow_schema

    text = json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
