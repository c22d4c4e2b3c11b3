"""``acd prompts ...``: the prompt pack (docs/prompts.md).

    acd prompts build --config acd.yaml          render the missing prompts, install them
    acd prompts build --flow F --sounds DIR      the same, without acd.yaml
    acd prompts list  --config acd.yaml          per prompt and language: recorded,
                                                 synthesized, stale or missing
    acd prompts check --config acd.yaml          the missing ones only (exit 1 if any)

The flows are ``--flow`` (repeatable), else the ``flow:`` of ``--config``
(default ./acd.yaml); the sounds folder ``--sounds``, else ``sounds:``; the
texts ``--prompts``, else ``prompts:``, else prompts.yaml beside the first
flow; the languages whose numbers the engine composes ``say_composed:``.

A sounds folder that does not exist is empty: ``list`` shows every prompt
missing, ``check`` fails (exit 1), ``build --dry-run`` says what it would
make; only ``build`` refuses it (it makes no folder but the language ones).

Exit codes: 2 when a file (flow, prompts file, acd.yaml, the manifest) cannot
be used, or ``build`` is given a sounds folder that does not exist; 1 when prompts are missing
(``check``), or some could not be made (``build``: no text, a tool or a
voice missing, a render that failed); 0 otherwise.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.table import Table

from acd.cli.common import console, err_console, shown
from acd.ivr.nodes import Flow
from acd.ivr.saying import COMPOSED_LANGUAGES

_STYLE = {"recorded": "green", "synthesized": "cyan", "stale": "yellow", "missing": "red",
          "no text": "red", "failed": "red"}


def _fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[red]error:[/red] {shown(message)}")
    sys.exit(code)


@dataclass
class _Setup:
    flows: list[Flow]
    compose: Sequence[str]
    prompts: Path
    sounds: Path
    needs: dict[str, list[str]]
    default: str | None
    #: where the sounds folder came from: "--sounds" or "`sounds:` in FILE"
    sounds_from: str = "--sounds"

    @property
    def sounds_exist(self) -> bool:
        return self.sounds.is_dir()

    def no_sounds(self) -> str:
        """The sounds folder does not exist: said so, with where it came
        from and what to do."""
        return (f"the sounds folder {self.sounds} ({self.sounds_from}) does not exist: "
                f"give --sounds DIR (Asterisk's, or a mounted copy), or create it "
                f"(mkdir -p {self.sounds})")


def _setup(flow_files: tuple[Path, ...], config: Path | None, prompts: Path | None,
           sounds: Path | None, languages: tuple[str, ...]) -> _Setup:
    from acd.ivr.load import load_flow
    from acd.ivr.parse import FlowError
    from acd.prompts.collect import needed
    from acd.prompts.pack import default_file

    looked = config is None and not flow_files
    if looked and Path("acd.yaml").is_file():
        config = Path("acd.yaml")
    flows: list[Flow] = []
    compose: Sequence[str] = COMPOSED_LANGUAGES
    cfg_prompts = cfg_sounds = None
    if config is not None:
        from acd.runtime.settings import ConfigError, load_config
        try:
            cfg = load_config(config)
        except (ConfigError, FlowError) as exc:
            _fail(str(exc))
        compose, cfg_prompts, cfg_sounds = cfg.say_composed, cfg.prompts, cfg.sounds
        if not flow_files:
            flows.append(cfg.flow)
    for f in flow_files:
        try:
            flows.append(load_flow(f))
        except FlowError as exc:
            _fail(str(exc))
    if not flows:
        _fail("which flow? Give --flow FILE (repeatable) or --config FILE"
              + (" (no ./acd.yaml here, the default --config)" if looked else ""))
    prompts_file = prompts or (Path(cfg_prompts) if cfg_prompts else
                               default_file(flows[0].file))
    sounds_dir = sounds or (Path(cfg_sounds) if cfg_sounds else None)
    if sounds_dir is None:
        _fail("which sounds folder? Give --sounds DIR (Asterisk's: /var/lib/asterisk/sounds) "
              f"or set `sounds:` in {config if config is not None else 'acd.yaml'}")
    sounds_from = "--sounds" if sounds is not None else f"`sounds:` in {config}"
    if sounds_dir.exists() and not sounds_dir.is_dir():
        _fail(f"{sounds_dir} ({sounds_from}): not a folder; give --sounds DIR")
    needs = needed(flows, compose)
    for lang in languages:
        if lang not in needs:
            raise click.BadParameter(f"{lang!r} is not a language of the flow(s) "
                                     f"({', '.join(needs)})", param_hint="--language")
    if languages:
        needs = {k: v for k, v in needs.items() if k in languages}
    return _Setup(flows, compose, prompts_file, sounds_dir, needs,
                  flows[0].default_language, sounds_from)


def _pack(path: Path) -> Any:
    from acd.prompts.pack import PromptsError, load_pack

    try:
        return load_pack(path)
    except PromptsError as exc:
        _fail(str(exc))


def _manifest(sounds: Path) -> Any:
    from acd.prompts.install import Manifest, ManifestError

    try:
        return Manifest.load(sounds)
    except ManifestError as exc:
        _fail(str(exc))


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--flow", "flow_files", multiple=True,
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="A flow whose prompts to take (repeatable; default: `flow:` of "
                          "--config)."),
        click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
                     help="Engine configuration: its flow, `sounds:`, `prompts:` and "
                          "`say_composed:` (default: ./acd.yaml, unless --flow is given)."),
        click.option("--prompts", type=click.Path(dir_okay=False, path_type=Path),
                     help="The prompts file (default: `prompts:` of acd.yaml, else "
                          "prompts.yaml beside the flow)."),
        click.option("--sounds", type=click.Path(file_okay=False, path_type=Path),
                     help="Asterisk's sounds folder (default: `sounds:` of acd.yaml)."),
        click.option("--language", "languages", multiple=True, metavar="L",
                     help="Only this language (repeatable)."),
    ]):
        f = option(f)
    return f


@click.group("prompts")
def prompts() -> None:
    """The prompt pack: render missing prompts, list what Asterisk would play."""


@prompts.command("build")
@_options
@click.option("--format", "fmt", type=click.Choice(["wav", "gsm", "ulaw"]), default="wav",
              show_default=True, help="What to write (8 kHz mono).")
@click.option("--force", is_flag=True, help="Render every synthesized prompt again.")
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
def prompts_build(flow_files: tuple[Path, ...], config: Path | None, prompts: Path | None,
                  sounds: Path | None, languages: tuple[str, ...], fmt: str, force: bool,
                  dry_run: bool) -> None:
    """Render the prompts the sounds folder lacks (espeak-ng, sox) into
    <sounds>/<lang>/acd/, and the flow's default language into <sounds>/acd/.

    Recorded files always win: a file `acd prompts build` did not write is
    never written over or removed, and a synthesized one of the same name and
    language goes when a recording appears.  What it wrote is listed in
    <sounds>/.acd-prompts.json."""
    from acd.ivr.sounds import SoundsFolder, SoundsPathError
    from acd.prompts.install import FAILED, NO_TEXT, Build, Row
    from acd.prompts.render import RenderError

    s = _setup(flow_files, config, prompts, sounds, languages)
    if not s.sounds_exist and not dry_run:
        _fail(s.no_sounds())
    pack = _pack(s.prompts)
    if not s.sounds_exist:
        err_console.print(f"[yellow]note:[/yellow] {shown(s.no_sounds())}; "
                          "a build refuses it; what a build would make there once it exists:",
                          soft_wrap=True, highlight=False)
    build = Build(pack, SoundsFolder(s.sounds), _manifest(s.sounds), fmt, force, dry_run)
    default = s.default if not languages or s.default in languages else None
    counts: Counter[str] = Counter()

    def show(row: Row) -> None:
        key = row.action or row.state
        counts[key] += 1
        if row.action in ("", "kept") and row.state not in (FAILED, NO_TEXT):
            return  # unchanged: recorded, or synthesized and current
        lang = row.language if row.folder is not None else f"-({row.language})"
        colour = "red" if row.state in (FAILED, NO_TEXT) else "green"
        what = row.action or row.state
        console.print(f"[{colour}]{shown(what)}[/{colour}] {shown(lang)} {shown(row.name)}"
                      + (f" -> {shown(row.file)}" if row.file and not dry_run else "")
                      + (f"  [dim]{shown(row.note)}[/dim]" if row.note else ""),
                      soft_wrap=True, highlight=False)

    try:
        rows = build.run(s.needs, default, show)
    except RenderError as exc:  # a tool is missing: nothing can be made
        _fail(str(exc), 1)
    except SoundsPathError as exc:
        _fail(str(exc))
    bad = sum(1 for r in rows if r.state in (FAILED, NO_TEXT))
    console.print(_summary(counts, dry_run)
                  + f" ({len(rows)} prompt files in {s.sounds}; texts: {s.prompts})",
                  soft_wrap=True, highlight=False)
    if bad:
        err_console.print(f"[red]{bad} prompt(s) could not be made[/red]")
        sys.exit(1)


def _summary(counts: Counter[str], dry_run: bool) -> str:
    """``made 3, kept 209``; a dry run: ``would be made 3; unchanged 209``, or
    ``nothing to do: 212 prompt files present``."""
    unchanged = ("", "kept", "recorded", "synthesized")
    same = sum(n for k, n in counts.items() if k in unchanged)
    todo = {k: n for k, n in counts.items() if k not in unchanged}
    if not todo:
        return f"nothing to do: {same} prompt files present" if dry_run \
            else f"nothing to make: {same} prompt files present"
    return "; ".join(f"{k} {n}" for k, n in sorted(todo.items())) \
        + (f"; unchanged {same}" if same else "")


def _status(s: _Setup) -> list[Any]:
    from acd.ivr.sounds import SoundsFolder, SoundsPathError
    from acd.prompts.install import MISSING, Row, status

    if not s.sounds_exist:  # nothing there: every prompt is missing
        return [Row(lang, lang, name, MISSING, note="no sounds folder")
                for lang, names in s.needs.items() for name in names]
    pack = _pack(s.prompts) if s.prompts.is_file() else None
    try:
        return status(pack, s.needs, SoundsFolder(s.sounds), _manifest(s.sounds))
    except SoundsPathError as exc:
        _fail(str(exc))


@prompts.command("list")
@_options
def prompts_list(flow_files: tuple[Path, ...], config: Path | None, prompts: Path | None,
                 sounds: Path | None, languages: tuple[str, ...]) -> None:
    """Every prompt the flow(s) and the engine may play, per language: the
    file Asterisk would play (its lookup order) and whether it is recorded,
    synthesized (stale: its text changed since) or missing."""
    s = _setup(flow_files, config, prompts, sounds, languages)
    rows = _status(s)
    if not s.sounds_exist:
        err_console.print(f"[yellow]note:[/yellow] {shown(s.no_sounds())}; every prompt "
                          "is missing", soft_wrap=True, highlight=False)
    table = Table("lang", "prompt", "state", "file", "note",
                  title=f"prompts in {shown(s.sounds)}")
    for r in rows:
        style = _STYLE.get(r.state, "")
        table.add_row(shown(r.language), shown(r.name), f"[{style}]{shown(r.state)}[/{style}]",
                      shown(r.file or "-"), shown(r.note))
    console.print(table)
    counts = Counter(r.state for r in rows)
    console.print(", ".join(f"{k} {n}" for k, n in sorted(counts.items())))


@prompts.command("check")
@_options
def prompts_check(flow_files: tuple[Path, ...], config: Path | None, prompts: Path | None,
                  sounds: Path | None, languages: tuple[str, ...]) -> None:
    """Exit 1 when Asterisk would find no file for a prompt the flow(s) or
    the engine may play (each missing one is named)."""
    from acd.prompts.install import MISSING

    s = _setup(flow_files, config, prompts, sounds, languages)
    rows = _status(s)
    gone = [r for r in rows if r.state == MISSING]
    if not s.sounds_exist:  # one line, not one per prompt
        err_console.print(f"[red]✗[/red] {shown(s.no_sounds())}", soft_wrap=True,
                          highlight=False)
        err_console.print(f"[red]{len(gone)} of {len(rows)} missing[/red] (all: no "
                          "sounds folder)", soft_wrap=True, highlight=False)
        sys.exit(1)
    for r in gone:
        err_console.print(f"[red]✗[/red] {shown(r.language)} {shown(r.name)}: no file in "
                          f"{shown(s.sounds)} where Asterisk looks")
    if gone:
        err_console.print(f"[red]{len(gone)} of {len(rows)} missing[/red] "
                          "(`acd prompts build` makes them)")
        sys.exit(1)
    console.print(f"[green]✓[/green] all {len(rows)} prompts found in {shown(s.sounds)}",
                  soft_wrap=True)
