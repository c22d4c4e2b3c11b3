"""The prompt pack: Asterisk's lookup order, the prompts file, what a flow
and the engine may play, rendering with espeak-ng and sox (audible speech
of plausible length, 8 kHz mono), recorded files winning over synthesized
ones, the start-up warning and the ``acd prompts`` command."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import acd, free_port

from acd.ivr import prompt_names as pn
from acd.ivr.checks import check_flow
from acd.ivr.load import load_flow
from acd.ivr.nodes import Menu
from acd.ivr.parse import parse_flow
from acd.ivr.sounds import SOUND_EXTENSIONS, SoundsFolder, SoundsPathError, lookup_dirs
from acd.prompts.collect import missing, needed
from acd.prompts.install import (
    FAILED,
    MANIFEST_NAME,
    MISSING,
    RECORDED,
    STALE,
    SYNTHESIZED,
    Build,
    Manifest,
    ManifestError,
    status,
)
from acd.prompts.pack import PromptsError, load_pack, parse_pack
from acd.prompts.render import RenderError, render
from acd.prompts.startup import check_at_start

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "ivr_flows"
PACK = FLOWS / "prompts.yaml"
TOOLS = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
needs_tools = pytest.mark.skipif(bool(TOOLS), reason=f"{' and '.join(TOOLS)} not installed "
                                 "(apt-get install espeak-ng sox; .ci/run does it)")


def sample_flows() -> list:  # type: ignore[type-arg]
    return [load_flow(FLOWS / "hotline.yaml"), load_flow(FLOWS / "basic.yaml")]


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"RIFF recorded")


# ------------------------------------------------------ Asterisk's lookup


def test_lookup_order_is_asterisks_fileexists_core() -> None:
    # main/file.c fileexists_core(): preflang, cut at each '_', no language,
    # then DEFAULT_LANGUAGE "en" unless already tried
    assert lookup_dirs("zh_TW") == ["zh_TW", "zh", "", "en"]
    assert lookup_dirs("yue") == ["yue", "", "en"]
    assert lookup_dirs("en") == ["en", ""]
    assert lookup_dirs("en_GB") == ["en_GB", "en", ""]
    assert lookup_dirs("") == ["", "en"]
    assert lookup_dirs(None) == ["", "en"]


def test_find_takes_the_first_folder_in_that_order_and_any_format(tmp_path: Path) -> None:
    touch(tmp_path, "en/acd/x.gsm", "acd/x.ulaw", "zh/acd/x.sln16", "yue/acd/y.txt")
    (tmp_path / "yue/acd/z.wav").mkdir(parents=True)  # a folder is not a sound
    sounds = SoundsFolder(tmp_path)
    assert sounds.find("zh", "acd/x") == "zh/acd/x.sln16"
    assert sounds.find("zh_TW", "acd/x") == "zh/acd/x.sln16"
    assert sounds.find("yue", "acd/x") == "acd/x.ulaw"  # the no-language folder before en
    assert sounds.find("en", "acd/x") == "en/acd/x.gsm"
    assert sounds.find("yue", "acd/y") is None and sounds.find("yue", "acd/z") is None
    (tmp_path / "acd/x.ulaw").unlink()
    assert SoundsFolder(tmp_path).find("yue", "acd/x") == "en/acd/x.gsm"  # then en
    assert {"wav", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "WAV"} <= set(SOUND_EXTENSIONS)


# --------------------------------------------------------- the prompts file


def test_the_sample_pack_has_a_text_for_every_prompt_of_both_flows_and_the_engine() -> None:
    pack = load_pack(PACK)
    needs = needed(sample_flows())
    assert set(needs) == {"zh", "yue", "nan", "en"}
    for lang, names in needs.items():
        assert set(pn.ENGINE_PROMPTS) <= set(names)
        lacking = [n for n in names if pack.pieces(n, lang) is None]
        assert not lacking, f"{lang}: no text for {lacking}"
    # numbers composed in zh, yue, nan (say_composed), said by Asterisk in en
    assert set(pn.NUMBER_PROMPTS) <= set(needs["yue"])
    assert not set(pn.NUMBER_PROMPTS) & set(needs["en"])
    # the dialplan's Playback() prompts, and the engine's number/date/time prompts
    dialplan = re.findall(r"Playback\((acd/[^)]+)\)",
                          (ROOT / "asterisk_conf/extensions.conf").read_text())
    assert set(dialplan) == {pn.ONE_MOMENT, pn.ALL_BUSY_CALL_LATER, pn.LEAVE_MESSAGE}
    for name in (*dialplan, *pn.NUMBER_PROMPTS, *pn.DATE_TIME_PROMPTS, *pn.ENGINE_PROMPTS):
        for lang in ("zh", "yue", "nan"):
            assert pack.pieces(name, lang), (name, lang)


def test_minnan_is_said_from_the_mandarin_text_and_choose_language_in_four_voices() -> None:
    pack = load_pack(PACK)
    assert pack.pieces("acd/welcome", "nan") == (("nan", "您好，欢迎致电客户服务热线。"),)
    assert pack.voices["nan"].voices == pack.voices["zh"].voices
    pieces = pack.pieces("acd/choose-language", "en")
    assert pieces is not None and [lang for lang, _ in pieces] == ["zh", "yue", "zh", "en"]


@pytest.mark.parametrize("lang", ["en", "zh", "yue", "nan"])
def test_menu_texts_name_the_keys_the_menu_takes(lang: str) -> None:
    """Each sample menu's prompt says "press K" (按K) for exactly its keys."""
    pack = load_pack(PACK)
    for flow in sample_flows():
        for node in flow.nodes.values():
            if not isinstance(node.body, Menu) or lang not in flow.languages:
                continue
            for name in node.body.prompt.resolve(lang, flow.default_language):
                pieces = pack.pieces(name, lang)
                assert pieces is not None
                said = {k for _, t in pieces for k in re.findall(r"(?:press |按)([0-9*#])", t)}
                assert said == set(node.body.options), \
                    f"{flow.file}: menu {node.name!r} takes {sorted(node.body.options)}, " \
                    f"its prompt {name} ({lang}) says {sorted(said)}"


@pytest.mark.parametrize(("text", "where", "what"), [
    ("voices: {zh: cmn}\nprompts:\n  acd/a: {fr: bonjour}\n", "3:11", "'fr' is not a language"),
    ("voices: {zh: cmn}\nprompts:\n  acd/a.wav: {zh: 好}\n", "3:3", "not a sound name"),
    ("voices: {zh: cmn}\nprompts:\n  acd/a:\n    zh: [{zh: a, en: b}]\n", "4:10", "one language"),
    ("voices: {zh: cmn, nan: {voice: cmn, text_from: xx}}\nprompts: {}\n", "1:48",
     "text_from: 'xx'"),
    ("voices: {zh: cmn}\nprompts: {}\ncolour: red\n", "3:1", "unknown key 'colour'"),
    ("voices: {zh: cmn}\nprompts:\n  acd/a: {zh: ''}\n", "3:15", "non-empty text"),
    ("voices: [cmn]\nprompts: {}\n", "1:9", "voices must be a mapping"),
    ("voices: {zh: cmn}\nprompts: {\n", "3:1", "not valid YAML"),
])
def test_prompts_file_errors_name_file_line_and_column(text: str, where: str, what: str) -> None:
    with pytest.raises(PromptsError) as err:
        parse_pack(text, "p.yaml")
    assert str(err.value).startswith(f"p.yaml:{where}: ") and what in str(err.value)


# -------------------------------------------------- what is missing, where


def test_missing_follows_the_lookup_order(tmp_path: Path) -> None:
    touch(tmp_path, "zh/acd/a.wav", "acd/b.gsm", "en/acd/c.ulaw")
    got = missing({"zh": ["acd/a", "acd/b", "acd/c", "acd/d"], "en": ["acd/a", "acd/c"]},
                  tmp_path)
    assert got == {"zh": ["acd/d"], "en": ["acd/a"]}  # en does not look in zh/


def test_flow_validate_checks_the_number_prompts_where_numbers_are_composed(
        tmp_path: Path) -> None:
    flow = parse_flow("""
flow: t
languages: [zh, en]
start: s
nodes:
  s: {type: say, say: number, value: "42", prompt: acd/your-balance-is, next: h}
  h: {type: hangup}
""", "t.yaml")
    touch(tmp_path, "zh/acd/your-balance-is.wav", "en/acd/your-balance-is.wav")
    problems = check_flow(flow, sounds=tmp_path)
    assert len(problems) == 1 and problems[0].line == 6
    msg = problems[0].message
    assert "for language(s) zh:" in msg and "acd/num/0" in msg and "en" not in msg.split(":")[1]
    touch(tmp_path, *(f"zh/{n}.wav" for n in pn.NUMBER_PROMPTS))
    assert check_flow(flow, sounds=tmp_path) == []
    assert check_flow(flow, sounds=tmp_path / "nope")[0].message.startswith("sounds folder")
    # Asterisk says English numbers itself; with say_composed [] it says all
    (tmp_path / "zh/acd/num/0.wav").unlink()
    assert check_flow(flow, sounds=tmp_path, compose=()) == []


# ------------------------------------------------------ recorded files win


def fake_renderer(calls: list[tuple[Sequence[tuple[str, str]], str]]):  # type: ignore[no-untyped-def]
    """Writes the voices and texts it was given (a fake espeak-ng + sox)."""
    def fake(pieces: Sequence[tuple[str, str]], fmt: str, out: Path) -> None:
        calls.append((tuple(pieces), fmt))
        out.write_text(f"{fmt} {list(pieces)}", encoding="utf-8")
    return fake


PACK_TEXT = """
voices: {en: en-us, zh: [cmn-latn-pinyin, cmn]}
prompts:
  acd/hello: {en: Hello., zh: 你好。}
"""


def builder(tmp_path: Path, calls: list, text: str = PACK_TEXT, **kw: object) -> Build:  # type: ignore[type-arg]
    kw = {"installed": frozenset({"en-us", "cmn-latn-pinyin"}), **kw}
    return Build(parse_pack(text, "p.yaml"), SoundsFolder(tmp_path), Manifest.load(tmp_path),
                 renderer=fake_renderer(calls), **kw)  # type: ignore[arg-type]


def test_build_installs_each_language_and_the_default_one_without_language(
        tmp_path: Path) -> None:
    calls: list = []  # type: ignore[type-arg]
    rows = builder(tmp_path, calls).run({"zh": ["acd/hello"], "en": ["acd/hello"]}, "zh")
    assert [(r.folder, r.file, r.action) for r in rows] == [
        ("zh", "zh/acd/hello.wav", "made"), ("en", "en/acd/hello.wav", "made"),
        (None, "acd/hello.wav", "made")]
    assert calls[0] == ((("cmn-latn-pinyin", "你好。"),), "wav")  # the first voice installed
    assert (tmp_path / "acd/hello.wav").read_text() == (tmp_path / "zh/acd/hello.wav").read_text()
    assert oct((tmp_path / "zh/acd/hello.wav").stat().st_mode & 0o777) == "0o644"
    assert set(Manifest.load(tmp_path).files) == {"zh/acd/hello.wav", "en/acd/hello.wav",
                                                 "acd/hello.wav"}
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]  # renamed into place
    # again: nothing to do
    calls.clear()
    rows = builder(tmp_path, calls).run({"zh": ["acd/hello"], "en": ["acd/hello"]}, "zh")
    assert calls == [] and {r.action for r in rows} == {"kept"}


def test_a_recording_wins_in_any_format_and_is_never_touched(tmp_path: Path) -> None:
    calls: list = []  # type: ignore[type-arg]
    needs = {"zh": ["acd/hello"], "en": ["acd/hello"]}
    builder(tmp_path, calls).run(needs, "zh")
    touch(tmp_path, "zh/acd/hello.gsm")  # the site records its own Mandarin greeting
    rows = builder(tmp_path, calls, dry_run=True).run(needs, "zh")
    assert rows[0].action == "would be removed" and (tmp_path / "zh/acd/hello.wav").exists()
    rows = builder(tmp_path, calls).run(needs, "zh")
    by = {r.folder: r for r in rows}
    assert by["zh"].state == RECORDED and by["zh"].file == "zh/acd/hello.gsm"
    assert not (tmp_path / "zh/acd/hello.wav").exists()  # the synthesized one went
    assert (tmp_path / "zh/acd/hello.gsm").read_bytes() == b"RIFF recorded"
    # the folder without a language now holds a copy of the recording
    assert by[None].action == "copied" and by[None].file == "acd/hello.gsm"
    assert (tmp_path / "acd/hello.gsm").read_bytes() == b"RIFF recorded"
    assert not (tmp_path / "acd/hello.wav").exists()
    assert "zh/acd/hello.gsm" not in Manifest.load(tmp_path).files
    # someone replaced a synthesized file with a recording of the same name
    (tmp_path / "en/acd/hello.wav").write_bytes(b"RIFF a real voice")
    rows = builder(tmp_path, calls, force=True).run(needs, "zh")
    assert {r.folder: r.state for r in rows}["en"] == RECORDED
    assert (tmp_path / "en/acd/hello.wav").read_bytes() == b"RIFF a real voice"
    assert "en/acd/hello.wav" not in Manifest.load(tmp_path).files


def test_a_changed_text_or_format_is_made_again_and_dry_run_changes_nothing(
        tmp_path: Path) -> None:
    calls: list = []  # type: ignore[type-arg]
    needs = {"en": ["acd/hello"]}
    builder(tmp_path, calls).run(needs, None)
    changed = PACK_TEXT.replace("Hello.", "Hello there.")
    before = (tmp_path / "en/acd/hello.wav").read_text()
    rows = builder(tmp_path, calls, changed, dry_run=True).run(needs, None)
    assert rows[0].action == "would be remade"
    assert (tmp_path / "en/acd/hello.wav").read_text() == before
    pack = parse_pack(changed, "p.yaml")
    st = status(pack, needs, SoundsFolder(tmp_path), Manifest.load(tmp_path))
    assert [r.state for r in st] == [STALE]
    rows = builder(tmp_path, calls, changed).run(needs, None)
    assert rows[0].action == "remade" and "Hello there." in (tmp_path / "en/acd/hello.wav"
                                                              ).read_text()
    st = status(pack, needs, SoundsFolder(tmp_path), Manifest.load(tmp_path))
    assert [r.state for r in st] == [SYNTHESIZED]
    rows = builder(tmp_path, calls, changed, fmt="gsm").run(needs, None)
    assert rows[0].file == "en/acd/hello.gsm" and not (tmp_path / "en/acd/hello.wav").exists()


def test_status_says_where_asterisk_finds_each_prompt(tmp_path: Path) -> None:
    calls: list = []  # type: ignore[type-arg]
    builder(tmp_path, calls).run({"en": ["acd/hello"]}, None)
    touch(tmp_path, "acd/bye.gsm")
    rows = status(None, {"yue": ["acd/hello", "acd/bye", "acd/gone"]}, SoundsFolder(tmp_path),
                  Manifest.load(tmp_path))
    assert [(r.state, r.file, r.note) for r in rows] == [
        (SYNTHESIZED, "en/acd/hello.wav", "from the en folder"),
        (RECORDED, "acd/bye.gsm", "from the no-language folder"),
        (MISSING, None, "")]


def test_a_recording_in_the_no_language_folder_wins_over_every_language(
        tmp_path: Path) -> None:
    """Asterisk tries sounds/zh/ before sounds/: a synthesized zh file would
    hide the site's recording at sounds/acd/hello.wav, so none is made."""
    calls: list = []  # type: ignore[type-arg]
    needs = {"zh": ["acd/hello"], "en": ["acd/hello"]}
    builder(tmp_path, calls).run(needs, "zh")  # synthesized first
    (tmp_path / "acd/hello.wav").unlink()  # the copy goes: a site records its own
    Manifest.load(tmp_path)
    touch(tmp_path, "acd/hello.wav")
    rows = builder(tmp_path, calls, dry_run=True).run(needs, "zh")
    assert [r.action for r in rows] == ["would be removed"] * 2 + [""]
    assert (tmp_path / "zh/acd/hello.wav").exists()
    rows = builder(tmp_path, calls).run(needs, "zh")
    assert [(r.folder, r.state, r.file) for r in rows] == [
        ("zh", RECORDED, "acd/hello.wav"), ("en", RECORDED, "acd/hello.wav"),
        (None, RECORDED, "acd/hello.wav")]
    assert "recording in the no-language folder wins" in rows[0].note
    assert not (tmp_path / "zh/acd/hello.wav").exists()
    assert not (tmp_path / "en/acd/hello.wav").exists()
    assert (tmp_path / "acd/hello.wav").read_bytes() == b"RIFF recorded"  # never written over
    assert Manifest.load(tmp_path).files == {}
    # nothing is made on a fresh folder either, and list says where it is from
    calls.clear()
    fresh = tmp_path / "fresh"
    touch(fresh, "acd/hello.wav")
    rows = builder(fresh, calls).run(needs, "zh")
    assert calls == [] and {r.state for r in rows} == {RECORDED}
    assert not (fresh / "zh").exists()
    st = status(None, needs, SoundsFolder(fresh), Manifest.load(fresh))
    assert [(r.state, r.file, r.note) for r in st] == [
        (RECORDED, "acd/hello.wav", "from the no-language folder")] * 2


def test_a_dialect_falls_through_to_its_languages_recording(tmp_path: Path) -> None:
    calls: list = []  # type: ignore[type-arg]
    text = PACK_TEXT.replace("voices: {", "voices: {zh_CN: cmn, ").replace(
        "{en: Hello.", "{zh_CN: 你好!, en: Hello.")
    touch(tmp_path, "zh/acd/hello.gsm")
    rows = builder(tmp_path, calls, text, installed=frozenset({"cmn", "en-us"})).run(
        {"zh_CN": ["acd/hello"]}, None)
    assert [(r.state, r.file) for r in rows] == [(RECORDED, "zh/acd/hello.gsm")]
    assert "recording in the zh folder wins" in rows[0].note and calls == []
    # a recording in en is another language: it does not count
    touch(tmp_path, "en/acd/bye.wav")
    text = text.replace("acd/hello:", "acd/bye:")
    rows = builder(tmp_path, calls, text, installed=frozenset({"cmn", "en-us"})).run(
        {"zh_CN": ["acd/bye"]}, None)
    assert [(r.state, r.file) for r in rows] == [(SYNTHESIZED, "zh_CN/acd/bye.wav")]


def test_an_all_text_in_a_language_without_a_voice_is_a_problem_not_a_traceback(
        tmp_path: Path) -> None:
    calls: list = []  # type: ignore[type-arg]
    text = "voices: {zh: cmn}\nprompts:\n  acd/hello: {all: 你好。}\n"
    rows = builder(tmp_path, calls, text, installed=frozenset({"cmn"})).run(
        {"zh": ["acd/hello"], "en": ["acd/hello"]}, "zh")
    by = {r.folder: r for r in rows}
    assert by["zh"].state == SYNTHESIZED and by["en"].state == FAILED
    assert "p.yaml:3:3: prompt 'acd/hello': no voice for language en in p.yaml voices:" \
        in by["en"].note
    # list: the file made earlier is shown, with the problem
    touch(tmp_path, "en/acd/hello.wav")
    m = Manifest.load(tmp_path)
    m.add("en/acd/hello.wav", "x", hashlib.sha256(b"RIFF recorded").hexdigest())
    st = status(parse_pack(text, "p.yaml"), {"en": ["acd/hello"]}, SoundsFolder(tmp_path), m)
    assert st[0].state == SYNTHESIZED and "no voice for language en" in st[0].note
    # the command: exit 1 naming the language and the file, no traceback
    flow = tmp_path / "f.yaml"
    flow.write_text("flow: f\nlanguages: [zh, en]\nstart: w\nnodes:\n"
                    "  w: {type: play, prompt: acd/hello, next: h}\n  h: {type: hangup}\n")
    pack = tmp_path / "p.yaml"
    pack.write_text(text)
    sounds = tmp_path / "s"
    sounds.mkdir()
    for cmd in (["build", "--dry-run"], ["list"], ["check"]):
        res = acd("prompts", *cmd, "--flow", str(flow), "--sounds", str(sounds),
                  "--prompts", str(pack))
        assert "Traceback" not in res.output and not isinstance(res.exception, KeyError), cmd
    res = acd("prompts", "build", "--dry-run", "--flow", str(flow), "--sounds", str(sounds),
              "--prompts", str(pack))
    assert res.exit_code == 1 and "no voice for language en in" in res.output


def test_the_sounds_folder_refuses_paths_outside_it(tmp_path: Path) -> None:
    sounds = SoundsFolder(tmp_path / "s")
    for bad in ("../x", "/etc", "zh/../../x", ".."):
        with pytest.raises(SoundsPathError, match="outside the sounds folder"):
            sounds.path(bad)
    with pytest.raises(SoundsPathError):
        sounds.in_folder("../../tmp/x", "acd/hello")
    with pytest.raises(SoundsPathError):
        sounds.find("/etc", "acd/hello")
    assert sounds.path("zh/acd/x.wav") == tmp_path / "s/zh/acd/x.wav"
    assert sounds.path("") == tmp_path / "s"


@pytest.mark.parametrize("entry", ["/etc/passwd", "../x.wav", "zh/../../x.wav", ""])
def test_a_manifest_entry_outside_the_sounds_folder_is_refused(tmp_path: Path,
                                                                entry: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(
        json.dumps({"files": {entry: {"made_from": "x", "sha256": "y"}}}))
    with pytest.raises(ManifestError, match="is not a path inside the sounds folder"):
        Manifest.load(tmp_path)
    res = acd("prompts", "list", "--flow", str(FLOWS / "basic.yaml"), "--sounds", str(tmp_path))
    assert res.exit_code == 2 and "not a path inside the sounds folder" in res.output


# ---------------------------------------------------------------- rendering


def sox_info(path: Path, *args: str) -> str:
    return subprocess.run(["sox", "--i", *args, str(path)], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def sox_stat(path: Path, *input_type: str) -> dict[str, float]:
    out = subprocess.run(["sox", *input_type, str(path), "-n", "stat"], capture_output=True,
                         text=True, check=True, timeout=30).stderr
    return {k.strip(): float(v) for k, v in
            (line.split(":", 1) for line in out.splitlines() if ":" in line)
            if re.fullmatch(r"\s*-?[0-9.]+\s*", v)}


@needs_tools
@pytest.mark.parametrize("lang", ["zh", "yue", "en", "nan"])
def test_a_rendered_prompt_is_audible_speech_of_plausible_length(tmp_path: Path,
                                                                 lang: str) -> None:
    build = Build(load_pack(PACK), SoundsFolder(tmp_path), Manifest.load(tmp_path))
    (row,) = build.run({lang: ["acd/goodbye"]}, None)
    assert row.state == SYNTHESIZED, row
    wav = tmp_path / lang / "acd/goodbye.wav"
    assert sox_info(wav, "-r") == "8000" and sox_info(wav, "-c") == "1"
    assert sox_info(wav, "-b") == "16"
    head = wav.read_bytes()[:44]  # what Asterisk's format_wav checks: PCM, mono, 8 kHz, 16 bit
    assert head[:4] == b"RIFF" and head[8:16] == b"WAVEfmt "
    assert struct.unpack("<HHIIHH", head[20:36]) == (1, 1, 8000, 16000, 2, 16)
    stat = sox_stat(wav)
    assert 0.5 < stat["Length (seconds)"] < 10  # "Thank you for calling. Goodbye."
    assert stat["RMS     amplitude"] > 0.03 and stat["Maximum amplitude"] > 0.5  # not silence


@needs_tools
def test_gsm_and_ulaw_and_a_prompt_in_four_voices(tmp_path: Path) -> None:
    pack = load_pack(PACK)
    pieces = pack.pieces("acd/choose-language", "zh")
    assert pieces is not None
    voices = {"zh": "cmn-latn-pinyin", "yue": "yue", "en": "en-us"}
    render([(voices[lang], text) for lang, text in pieces], "gsm", tmp_path / "c.gsm")
    assert sox_info(tmp_path / "c.gsm", "-r") == "8000"
    length = sox_stat(tmp_path / "c.gsm")["Length (seconds)"]
    assert 3 < length < 15  # four sentences
    render([("en-us", "One moment, please.")], "ulaw", tmp_path / "m.ulaw")
    stat = sox_stat(tmp_path / "m.ulaw", "-t", "ul", "-r", "8000", "-c", "1")
    assert 0.3 < stat["Length (seconds)"] < 5 and stat["RMS     amplitude"] > 0.03


@needs_tools
def test_render_errors_name_the_voice(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="voice nonexist: espeak-ng failed"):
        render([("nonexist", "x")], "wav", tmp_path / "x.wav")
    # a voice espeak-ng does not list is not used (it would take "no-such" as Norwegian)
    pack = parse_pack("voices: {en: [no-such, nonexist]}\nprompts: {acd/a: {en: Hi.}}\n",
                      "p.yaml")
    (row,) = Build(pack, SoundsFolder(tmp_path), Manifest.load(tmp_path)).run(
        {"en": ["acd/a"]}, None)
    assert row.state == FAILED and "none of the voices of en (no-such, nonexist" in row.note


# ----------------------------------------------------------- start-up check


def write_config(tmp_path: Path, flow: Path, sounds: Path | None) -> Path:
    cfg = tmp_path / "acd.yaml"
    cfg.write_text(f"""
ami: {{host: 127.0.0.1, port: {free_port()}, username: acd, secret: x}}
agi: {{port: 0}}
database: sqlite+aiosqlite:///{tmp_path}/acd.db
flow: {flow}
queues: [{{name: billing}}, {{name: tech}}, {{name: general}}, {{name: vip}}]
""" + (f"sounds: {sounds}\n" if sounds is not None else ""))
    return cfg


async def test_serve_warns_once_at_start_naming_the_missing_prompts_per_language(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from acd.adapters.ami import AmiConnectError
    from acd.runtime.serve import serve
    from acd.runtime.settings import load_config

    sounds = tmp_path / "sounds"
    touch(sounds, "zh/acd/welcome.wav", *(f"acd/{n}.wav" for n in ("goodbye", "no-input")))
    config = load_config(write_config(tmp_path, FLOWS / "hotline.yaml", sounds))
    with caplog.at_level(logging.INFO, "acd"), pytest.raises(AmiConnectError):
        await serve(config)  # Asterisk is not there: the check ran before
    warned = [r for r in caplog.records if r.name == "acd.prompts.startup"]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    text = warned[0].getMessage()
    assert f"missing in {sounds}" in text
    for lang in ("zh: ", "yue: ", "nan: ", "en: "):
        assert lang in text
    assert "acd/main-menu" in text and "acd prompts build" in text
    # all missing but zh's welcome, and goodbye and no-input (in the no-language
    # folder, which every language tries)
    total = sum(len(v) for v in needed([config.flow], config.say_composed).values())
    assert text.startswith(f"{total - 1 - 2 * 4} prompt(s) missing")
    assert "acd/welcome" not in text.split("zh: ")[1].split(";")[0]
    assert len(text) < 2000  # names, not a flood


def test_without_sounds_one_warning_says_prompts_are_not_checked(
        caplog: pytest.LogCaptureFixture) -> None:
    flow = load_flow(FLOWS / "basic.yaml")
    with caplog.at_level(logging.INFO, "acd"):
        assert check_at_start(flow, None, ()) is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "`sounds:`" in record.getMessage()
    assert "/var/lib/asterisk/sounds" in record.getMessage()


def test_a_reload_warns_about_missing_prompts_instead_of_refusing(tmp_path: Path) -> None:
    from acd.runtime.flows import FlowRegistry

    flow = load_flow(FLOWS / "basic.yaml")
    registry = FlowRegistry(flow, FLOWS / "basic.yaml", sounds=tmp_path)
    result = registry.reload()
    assert result.ok and any("prompts missing" in w and "acd/basic-menu" in w
                             for w in result.warnings)


# --------------------------------------------------------------------- CLI


def test_cli_exit_codes(tmp_path: Path) -> None:
    flow = str(FLOWS / "basic.yaml")
    sounds = tmp_path / "s"
    sounds.mkdir()
    res = acd("prompts", "check", "--flow", flow, "--sounds", str(sounds))
    assert res.exit_code == 1 and "en acd/welcome: no file" in res.output
    res = acd("prompts", "check", "--flow", flow, "--sounds", str(tmp_path / "nope"))
    assert res.exit_code == 1 and "does not exist" in res.output
    res = acd("prompts", "list", "--flow", flow, "--sounds", str(sounds),
              "--prompts", str(tmp_path / "none.yaml"))
    assert res.exit_code == 0 and "missing" in res.output  # list needs no texts
    res = acd("prompts", "build", "--flow", flow, "--sounds", str(sounds),
              "--prompts", str(tmp_path / "none.yaml"))
    assert res.exit_code == 2 and "none.yaml: prompts file not found" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("voices: {en: en-us}\nprompts:\n  acd/x: {fr: oui}\n")
    res = acd("prompts", "build", "--flow", flow, "--sounds", str(sounds), "--prompts", str(bad))
    assert res.exit_code == 2 and "bad.yaml:3:11:" in res.output
    res = acd("prompts", "build", "--sounds", str(sounds))
    assert res.exit_code == 2 and "Give --flow FILE" in res.output
    assert "no ./acd.yaml here" in res.output
    res = acd("prompts", "build", "--flow", flow, "--sounds", str(sounds), "--language", "fr")
    assert res.exit_code == 2 and "'fr' is not a language of the flow" in res.output
    (sounds / MANIFEST_NAME).write_text("{not json")
    res = acd("prompts", "build", "--flow", flow, "--sounds", str(sounds))
    assert res.exit_code == 2 and MANIFEST_NAME in res.output
    (sounds / MANIFEST_NAME).unlink()
    # a text the pack lacks: exit 1, naming it
    small = tmp_path / "small.yaml"
    small.write_text("voices: {en: en-us}\nprompts:\n  acd/welcome: {en: Hi.}\n")
    res = acd("prompts", "build", "--flow", flow, "--sounds", str(sounds), "--prompts",
              str(small), "--dry-run")
    assert res.exit_code == 1 and "no text for acd/basic-menu in en" in res.output
    assert not list(sounds.iterdir())  # a dry run writes nothing


def test_cli_names_the_missing_tool_and_its_package(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, no sox
    res = acd("prompts", "build", "--flow", str(FLOWS / "basic.yaml"), "--sounds", str(tmp_path))
    assert res.exit_code == 1
    assert "espeak-ng is not installed" in res.output and "apt-get install espeak-ng" in res.output


@needs_tools
@pytest.mark.slow
def test_build_then_validate_and_check_both_sample_flows_report_none_missing(
        tmp_path: Path) -> None:
    flows = ["--flow", str(FLOWS / "hotline.yaml"), "--flow", str(FLOWS / "basic.yaml")]
    res = acd("prompts", "build", *flows, "--sounds", str(tmp_path))
    assert res.exit_code == 0, res.output
    res = acd("flow", "validate", str(FLOWS / "hotline.yaml"), str(FLOWS / "basic.yaml"),
              "--sounds", str(tmp_path))
    assert res.exit_code == 0, res.output
    res = acd("prompts", "check", *flows, "--sounds", str(tmp_path))
    assert res.exit_code == 0 and "all " in res.output, res.output
    assert missing(needed(sample_flows()), tmp_path) == {}
    res = acd("prompts", "build", *flows, "--sounds", str(tmp_path))
    assert res.exit_code == 0 and "made" not in res.output
    assert "nothing to make: " in res.output, res.output


def missing_sounds_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config whose `sounds:` names a folder that is not there (as
    acd.example.yaml's /var/lib/asterisk/sounds on a machine without Asterisk)."""
    gone = tmp_path / "var" / "sounds"
    cfg = tmp_path / "site.yaml"
    write_config(tmp_path, FLOWS / "basic.yaml", gone).rename(cfg)
    return cfg, gone


def test_a_sounds_folder_that_does_not_exist_is_empty_but_build_refuses_it(
        tmp_path: Path) -> None:
    cfg, gone = missing_sounds_config(tmp_path)
    where = f"`sounds:` in {cfg}"
    total = sum(len(v) for v in needed([load_flow(FLOWS / "basic.yaml")]).values())
    res = acd("prompts", "list", "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert where in res.output and "does not exist" in res.output
    assert f"missing {total}" in res.output and "recorded" not in res.output
    res = acd("prompts", "check", "--config", str(cfg))
    assert res.exit_code == 1
    assert where in res.output and f"mkdir -p {gone}" in res.output
    assert f"{total} of {total} missing" in res.output
    res = acd("prompts", "build", "--config", str(cfg), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "would be made" in res.output and "acd/welcome" in res.output
    assert where in res.output and not gone.exists()
    res = acd("prompts", "build", "--config", str(cfg))
    assert res.exit_code == 2 and where in res.output and "--sounds DIR" in res.output
    assert not gone.exists() and not gone.parent.exists()
    # --sounds is named as the source when it was given
    res = acd("prompts", "build", "--flow", str(FLOWS / "basic.yaml"), "--sounds", str(gone))
    assert res.exit_code == 2 and f"{gone} (--sounds) does not exist" in res.output


def test_a_build_without_its_tools_creates_no_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no espeak-ng, no sox
    res = acd("prompts", "build", "--flow", str(FLOWS / "basic.yaml"), "--sounds", str(sounds))
    assert res.exit_code == 1 and "espeak-ng is not installed" in res.output
    assert list(sounds.iterdir()) == []


def test_a_dry_run_with_nothing_to_do_says_so(tmp_path: Path) -> None:
    flow = load_flow(FLOWS / "basic.yaml")
    needs = needed([flow])
    for lang, names in needs.items():
        touch(tmp_path, *(f"{lang}/{n}.wav" for n in names))
        if lang == flow.default_language:
            touch(tmp_path, *(f"{n}.wav" for n in names))
    res = acd("prompts", "build", "--flow", str(FLOWS / "basic.yaml"), "--sounds",
              str(tmp_path), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "nothing to do: " in res.output and "would change" not in res.output
    assert "kept" not in res.output
