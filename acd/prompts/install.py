"""Synthesized prompts in an Asterisk sounds folder, beside the recorded ones.

``<sounds>/<lang>/acd/<name>.<ext>`` for each language, and the flow's
default language once more in ``<sounds>/acd/`` (the folder without a
language, which Asterisk tries before ``en``).  The engine sets the
channel's language to the flow's default (its first ``languages:``) when
the IVR starts, so callers in the flow hear the language folders; the
trunk's language only matters for what the dialplan plays before the AGI
starts (``acd-recover``'s ``acd/one-moment`` when no engine answers), and the
no-language copy serves that case whatever the trunk's language.

Recorded files always win.  The manifest ``<sounds>/.acd-prompts.json`` lists
every file this module wrote, with what it was made from and the hash of its
bytes; any other sound file is a recording: it is never written over or
removed, and a synthesized file of the same name and language (in any
format) is removed when one appears.  A recording in a folder Asterisk
tries after a language's own (the no-language folder; ``zh`` for
``zh_CN``) wins too: that language's file is not made, and a synthesized
one is removed, so that Asterisk falls through to the recording.  A listed
file whose bytes changed was replaced by someone: it is a recording from
then on.  A synthesized file
whose text (voice, format) changed is made again.  Each file is written
beside its place and renamed into it (atomic), readable by all (Asterisk
runs as another user); the manifest likewise, after each file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from acd.ivr.sounds import SoundsFolder, lookup_dirs
from acd.loaders.textfile import TextFileError, read_bytes_file
from acd.prompts.pack import PromptPack, PromptsError
from acd.prompts.render import RenderError, installed_voices, pick_voice, render, tool

MANIFEST_NAME = ".acd-prompts.json"
MANIFEST_MAX_BYTES = 4 * 1024 * 1024
_ABOUT = ("files `acd prompts build` synthesized here (path -> what it was made from, "
          "sha256 of its bytes); any other sound file is a recording and is never touched")

#: a row's state
RECORDED, SYNTHESIZED, STALE, MISSING, NO_TEXT, FAILED = (
    "recorded", "synthesized", "stale", "missing", "no text", "failed")


class ManifestError(Exception):
    """The manifest cannot be read or written (names the file)."""


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Manifest:
    """What ``acd prompts build`` wrote in a sounds folder."""

    def __init__(self, root: Path, files: dict[str, dict[str, str]] | None = None) -> None:
        self.root = root
        self.path = root / MANIFEST_NAME
        self.files: dict[str, dict[str, str]] = files or {}
        self._checked: dict[str, bool] = {}

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = root / MANIFEST_NAME
        if not path.exists():
            return cls(root)
        try:
            data = json.loads(read_bytes_file(path, "manifest", MANIFEST_MAX_BYTES))
        except TextFileError as exc:
            raise ManifestError(str(exc)) from None
        except ValueError as exc:
            raise ManifestError(f"{path}: not the JSON `acd prompts build` writes ({exc}); "
                                "delete it, and the files it listed count as recordings"
                                ) from None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, dict)
                and all(isinstance(x, str) for x in v.values()) for k, v in files.items()):
            raise ManifestError(f"{path}: not the manifest `acd prompts build` writes "
                                "(no 'files' mapping); delete it, and the files it listed "
                                "count as recordings")
        for rel in files:
            parts = rel.replace("\\", "/").split("/")
            if not rel or rel.startswith(("/", "\\")) or Path(rel).is_absolute() \
                    or ".." in parts or "" in parts:
                raise ManifestError(f"{path}: the entry {rel!r} is not a path inside the "
                                    "sounds folder (absolute, or with '..'); the manifest "
                                    "was edited or damaged: delete it, and the files it "
                                    "listed count as recordings")
        return cls(root, files)

    def ours(self, rel: str) -> bool:
        """``rel`` was written here and is unchanged since."""
        got = self._checked.get(rel)
        if got is None:
            entry = self.files.get(rel)
            got = entry is not None and _sha256(self.root / rel) == entry.get("sha256")
            self._checked[rel] = got
        return got

    def made_from(self, rel: str) -> str | None:
        entry = self.files.get(rel)
        return entry.get("made_from") if entry is not None else None

    def add(self, rel: str, made_from: str, sha256: str) -> None:
        self.files[rel] = {"made_from": made_from, "sha256": sha256}
        self._checked[rel] = True

    def drop(self, rel: str) -> None:
        self.files.pop(rel, None)
        self._checked.pop(rel, None)

    def save(self) -> None:
        data = {"about": _ABOUT, "version": 1, "files": dict(sorted(self.files.items()))}
        try:
            _write_atomic(self.path, json.dumps(data, ensure_ascii=False, indent=1).encode())
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot write the manifest: "
                                f"{exc.strerror or exc}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True, slots=True)
class Row:
    """One prompt in one language (or in the folder without a language)."""

    language: str  # the language it is said in
    folder: str | None  # the folder's language; None: ``<sounds>/`` itself (no language)
    name: str
    state: str  # RECORDED, SYNTHESIZED, STALE, MISSING, NO_TEXT, FAILED
    file: str | None = None  # relative to the sounds folder
    action: str = ""  # what build did (or would do): made, remade, copied, removed, kept
    note: str = ""

    @property
    def where(self) -> str:
        return self.folder if self.folder is not None else "-"


def _rel(folder: str | None, name: str, ext: str = "") -> str:
    rel = f"{folder}/{name}" if folder else name
    return f"{rel}.{ext}" if ext else rel


def _ext(rel: str) -> str:
    return rel.rpartition(".")[2]


def status(pack: PromptPack | None, needs: Mapping[str, Sequence[str]], sounds: SoundsFolder,
           manifest: Manifest) -> list[Row]:
    """What a caller of each language hears for each prompt (Asterisk's
    lookup order): a recording, a synthesized file (``stale``: its text
    changed since), or nothing (``missing``)."""
    rows: list[Row] = []
    for lang, names in needs.items():
        for name in names:
            got = sounds.locate(lang, name)
            if got is None:
                rows.append(Row(lang, lang, name, MISSING))
                continue
            folder, found = got
            note = "" if folder == lang else f"from the {folder or 'no-language'} folder"
            state = RECORDED
            if manifest.ours(found):
                state = SYNTHESIZED
                try:
                    now = pack.fingerprint(name, folder, _ext(found)) \
                        if pack is not None and folder else None
                except PromptsError as exc:
                    now = None
                    note = f"{note}; {exc}" if note else str(exc)
                if now is not None and now != manifest.made_from(found):
                    state = STALE
            rows.append(Row(lang, folder or None, name, state, found, note=note))
    return rows


@dataclass
class Build:
    """``acd prompts build``: what to make, where."""

    pack: PromptPack
    sounds: SoundsFolder
    manifest: Manifest
    fmt: str = "wav"
    force: bool = False
    dry_run: bool = False
    #: espeak-ng's voices (None: listed at the first render)
    installed: frozenset[str] | None = None
    #: ``renderer(pieces as (voice, text), format, file)``: :func:`render`
    renderer: Callable[[Sequence[tuple[str, str]], str, Path], None] = render
    #: espeak-ng and sox were found (checked before the first render, so that
    #: a build without them creates no folder)
    tools_checked: bool = False

    def run(self, needs: Mapping[str, Sequence[str]], default: str | None,
            on_row: Callable[[Row], None] | None = None) -> list[Row]:
        """Every prompt of ``needs`` in its language's folder, and those of
        the ``default`` language in the folder without a language.  A tool
        that is missing ends the build (RenderError with ``tool_missing``);
        a prompt that cannot be made is a FAILED row."""
        rows: list[Row] = []
        slots: list[tuple[str | None, str]] = [(lang, lang) for lang in needs]
        if default is not None and default in needs:
            slots.append((None, default))
        for folder, lang in slots:
            for name in needs[lang]:
                row = self._one(folder, lang, name)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
        return rows

    # ------------------------------------------------------------ one slot

    def _recorded(self, folder: str | None, name: str) -> list[str]:
        """The recordings of ``name`` in ``folder`` (files this module did
        not write, or that changed since: those are forgotten)."""
        recorded = [f for f in self.sounds.in_folder(folder, name)
                    if not self.manifest.ours(f)]
        for f in recorded:  # listed but changed since: someone's recording now
            if f in self.manifest.files:
                self._forget(f)
        return recorded

    def _fallback_recording(self, folder: str | None, name: str) -> tuple[str, str] | None:
        """(folder, file) of a recording of ``name`` that Asterisk would play
        on a channel of language ``folder`` once that folder has no file: in
        a folder it tries next (``zh`` for ``zh_CN``; the no-language folder),
        ``en`` not counted (another language)."""
        if folder is None:
            return None
        tried = lookup_dirs(folder)
        for lang in tried[1:tried.index("") + 1]:
            recorded = self._recorded(lang or None, name)
            if recorded:
                return lang, recorded[0]
        return None

    def _one(self, folder: str | None, lang: str, name: str) -> Row:
        files = self.sounds.in_folder(folder, name)
        ours = [f for f in files if self.manifest.ours(f)]
        recorded = self._recorded(folder, name)
        note = "recording wins"
        if not recorded:
            fallback = self._fallback_recording(folder, name)
            if fallback is not None:
                recorded = [fallback[1]]
                note = f"recording in the {fallback[0] or 'no-language'} folder wins"
        if recorded:
            removed = [f for f in ours if self._remove(f)]
            done = "would be removed" if self.dry_run else "removed"
            return Row(lang, folder, name, RECORDED, recorded[0], done if removed else "",
                       f"{note}; {done}: {', '.join(removed)}" if removed
                       else (note if recorded[0] not in files else ""))
        try:
            source = self._source(folder, lang, name)
        except PromptsError as exc:
            return Row(lang, folder, name, FAILED, ours[0] if ours else None, "", str(exc))
        if source is None:
            if ours:
                return Row(lang, folder, name, SYNTHESIZED, ours[0], "kept",
                           "no text in the prompts file any more")
            return Row(lang, folder, name, NO_TEXT, None, "",
                       f"no text for {name} in {lang} in {self.pack.file}")
        kind, made_from, ext, make = source
        target = _rel(folder, name, ext)
        if not self.force and ours == [target] and self.manifest.made_from(target) == made_from:
            return Row(lang, folder, name, SYNTHESIZED, target, "kept")
        action = "remade" if ours and kind == "made" else kind
        if self.dry_run:
            return Row(lang, folder, name, STALE if ours else MISSING, ours[0] if ours else None,
                       f"would be {action}", target)
        try:
            if kind == "made":
                self._check_tools()
            sha = self._install(target, make)
        except RenderError as exc:
            if exc.tool_missing:
                raise
            return Row(lang, folder, name, FAILED, ours[0] if ours else None, "", str(exc))
        except PromptsError as exc:
            return Row(lang, folder, name, FAILED, ours[0] if ours else None, "", str(exc))
        self.manifest.add(target, made_from, sha)
        for f in ours:
            if f != target:
                self._remove(f)
        self.manifest.save()
        self.sounds.forget()
        return Row(lang, folder, name, SYNTHESIZED, target, action)

    def _source(self, folder: str | None, lang: str, name: str
                ) -> tuple[str, str, str, Callable[[Path], None]] | None:
        """(action, made_from, extension, writer) of the file to make: in the
        folder without a language, a copy of the default language's recording
        if it has one; else rendered from the text (None: there is none)."""
        if folder is None:
            recorded = [f for f in self.sounds.in_folder(lang, name)
                        if not self.manifest.ours(f)]
            if recorded:
                src = self.sounds.path(recorded[0])
                digest = _sha256(src) or ""

                def copy(out: Path) -> None:
                    out.write_bytes(src.read_bytes())

                return "copied", f"copy:{recorded[0]}:{digest[:16]}", _ext(recorded[0]), copy
        pieces = self.pack.pieces(name, lang)
        made_from = self.pack.fingerprint(name, lang, self.fmt)
        if pieces is None or made_from is None:
            return None

        def make(out: Path) -> None:
            self.renderer(tuple((self._voice(pl, name), text) for pl, text in pieces),
                          self.fmt, out)

        return "made", made_from, self.fmt, make

    def _check_tools(self) -> None:
        """RenderError (``tool_missing``) when espeak-ng or sox is not on
        PATH: raised before anything is created."""
        if not self.tools_checked and self.renderer is render:
            tool("espeak-ng")
            tool("sox")
        self.tools_checked = True

    def _voice(self, lang: str, name: str = "") -> str:
        voice = self.pack.voice(lang, name)
        if self.installed is None:
            self.installed = installed_voices()
        got = pick_voice(voice.voices, self.installed)
        if got is None:
            raise RenderError(f"espeak-ng has none of the voices of {lang} "
                              f"({', '.join(voice.voices)}; {self.pack.file}): install "
                              "espeak-ng-data, or name one `espeak-ng --voices` lists")
        return got

    def _install(self, target: str, make: Callable[[Path], None]) -> str:
        """Make ``target`` beside its place and rename it in; its sha256."""
        path = self.sounds.path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
        except OSError as exc:
            raise RenderError(f"{path.parent}: cannot write there: {exc.strerror or exc}"
                              ) from None
        try:
            make(Path(tmp))
            sha = _sha256(Path(tmp))
            if sha is None:
                raise RenderError(f"{tmp}: the rendered file cannot be read back")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as exc:
            raise RenderError(f"{path}: cannot write it: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return sha

    def _remove(self, rel: str) -> bool:
        """Remove a file this module wrote (never another)."""
        if not self.manifest.ours(rel):
            return False
        if not self.dry_run:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.sounds.path(rel))
            self._forget(rel)
        return True

    def _forget(self, rel: str) -> None:
        if not self.dry_run:
            self.manifest.drop(rel)
            self.manifest.save()
            self.sounds.forget()


def iter_missing(rows: Sequence[Row]) -> Iterator[Row]:
    return (r for r in rows if r.state in (MISSING, NO_TEXT, FAILED))
