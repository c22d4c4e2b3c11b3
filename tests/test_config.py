"""acd.yaml: every problem names file, line and column, then the key and the
same words as before the positioned reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from acd.loaders.yamlpos import Reader, YamlError
from acd.runtime.settings import ConfigError, load_config, parse_config
from cli import main

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "ivr_flows" / "basic.yaml"


def problem(tmp_path: Path, text: str) -> str:
    path = tmp_path / "acd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    return message[len(f"{path}:"):]


def test_the_sample_configuration_loads() -> None:
    config = load_config(ROOT / "acd.example.yaml")
    assert [a.agent_id for a in config.core.agents] == ["a1001", "a1002", "a1003", "a1004"]
    assert config.api_port == 8088 and config.sms is not None


def test_a_wrong_type_deep_in_the_file_names_its_line_and_column(tmp_path: Path) -> None:
    text = (f"flow: {FLOW}\n"
            "queues: [{name: billing}]\n"
            "agents:\n"
            "  - {id: a1, extension: '1001', queues: [billing]}\n"
            "  - id: a2\n"
            "    extension: '1002'\n"
            "    skills:\n"
            "      billing: 11\n")
    assert problem(tmp_path, text) == \
        "8:16: agents[1].skills.billing: must be a level from 1 to 10"
    text = f"flow: {FLOW}\nqueues: [{{name: billing}}]\nami:\n  host: pbx\n  port: high\n"
    assert problem(tmp_path, text) == "5:9: ami.port: must be a TCP port number (0-65535)"


def test_a_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    text = f"flow: {FLOW}\nqueues: [{{name: billing}}\nami: {{host: pbx}}\n"
    assert problem(tmp_path, text) == \
        "3:1: not valid YAML: expected ',' or ']', but got '<scalar>'"
    assert problem(tmp_path, "server: pbx1\n  port: 1\n").startswith("2:7: not valid YAML: ")
    assert problem(tmp_path, f"flow: {FLOW}\nx: !!python/object:os.system 1\n") \
        .startswith("2:4: not valid YAML: could not determine a constructor")


def test_an_unknown_key_is_placed_at_the_key(tmp_path: Path) -> None:
    text = f"flow: {FLOW}\nqueues: [{{name: billing}}]\nami: {{host: pbx, prot: 5038}}\n"
    assert problem(tmp_path, text).startswith("3:18: ami.prot: unknown key (known: ")
    assert problem(tmp_path, "queues: [{name: billing}]\nwrapup_s: 5\n") \
        .startswith("2:1: wrapup_s: unknown key (known: agents, agi, ami, ")


@pytest.mark.parametrize(("text", "expected"), [
    # a missing key is placed at the mapping that lacks it
    ("queues: [{name: billing}]\nagents:\n  - {extension: '1001', queues: [billing]}\n",
     "3:5: agents[0].id: must be a non-empty text"),
    # a list item at the item
    ("queues: [{name: billing}]\nagents:\n  - {id: a1, extension: '1001', "
     "queues: [billing, tech]}\n",
     "3:51: agents[0].queues: unknown queue 'tech' (queues: billing)"),
    ("queues: [{name: billing}, {name: billing}]\n",
     "1:34: queues[1].name: queue 'billing' is defined twice"),
    ("server: pbx1\n", "1:1: queues: must be a non-empty list of queues (or give a routing file)"),
    ("", "1:1: top level: must be a mapping"),
    ("# only a comment\n- 1\n", "2:1: top level: must be a mapping"),
])
def test_other_problems_keep_their_words_after_the_place(tmp_path: Path, text: str,
                                                         expected: str) -> None:
    assert problem(tmp_path, text) == expected


def test_merged_values_are_checked_like_the_others(tmp_path: Path) -> None:
    text = (f"flow: {FLOW}\nqueues: [{{name: billing}}]\n"
            "agi: &net {host: 127.0.0.1, port: 4573}\n"
            "ami:\n  <<: *net\n  port: 70000\n")
    assert problem(tmp_path, text) == "6:9: ami.port: must be a TCP port number (0-65535)"


def test_files_it_names_and_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "routing.yaml").write_text("queues: [\n", encoding="utf-8")
    (tmp_path / "acd.yaml").write_text(f"flow: {FLOW}\nrouting: routing.yaml\n")
    with pytest.raises(ConfigError) as info:  # placed in the routing file
        load_config(tmp_path / "acd.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'routing.yaml'}:2:1: not valid YAML: ")
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "latin1.yaml").write_bytes("server: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError,
                       match=r"latin1\.yaml:1:12: not UTF-8 text \(byte 0xe9 at offset 11\)"):
        load_config(tmp_path / "latin1.yaml")


def test_data_without_a_file_keeps_the_old_form() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"queues": [{"name": "billing"}], "ami": {"port": -1}}, "acd.yaml")
    assert str(info.value) == "acd.yaml: ami.port: must be a TCP port number (0-65535)"


def test_serve_prints_the_place_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "acd.yaml"
    cfg.write_text(f"flow: {FLOW}\nqueues: [{{name: billing}}, {{name: tech}}, {{name: general}}]\n"
                   "agi:\n  port: -4\n")
    r = CliRunner().invoke(main, ["serve", "--config", str(cfg)])
    assert r.exit_code == 2
    assert f"{cfg}:4:9: agi.port: must be a TCP port number (0-65535)" in r.output


# ------------------------------- the positioned reader's plain values, alone


def test_plain_values_find_their_places_by_path() -> None:
    reader = Reader("x.yaml")
    text = "a: &n {p: 1, q: [x, y]}\nb: *n\nc:\n  <<: *n\n  p: 2\n"
    data, places = reader.plain(reader.compose(text))
    assert data == {"a": {"p": 1, "q": ["x", "y"]}, "b": {"p": 1, "q": ["x", "y"]},
                    "c": {"p": 2, "q": ["x", "y"]}}
    assert places.find("a.p") == (1, 11) and places.find("a.p", key=True) == (1, 8)
    assert places.find("a.q[1]") == places.find("a.q[1]", key=True) == (1, 21)
    # an alias is placed at its anchor, its key where it stands
    assert places.find("b") == (1, 4) and places.find("b", key=True) == (2, 1)
    assert places.find("b.q[1]") == (1, 4)
    # merged: the key given here, and the ones merged in at their anchor
    assert places.find("c.p") == (5, 6) and places.find("c.q") == (1, 17)
    # what the document lacks: the nearest enclosing value, never a key
    assert places.find("a.q[7]", key=True) == (1, 17)
    assert places.find("c.zz") == (4, 3) and places.find("nope.x", key=True) == (1, 1)


def test_a_value_no_safe_type_holds_is_the_readers_positioned_error() -> None:
    class Wrong(YamlError):
        pass

    reader = Reader("x.yaml", Wrong)
    with pytest.raises(Wrong) as info:
        reader.plain(reader.compose("x:\n  - !!binary zz\n"))
    assert str(info.value) == "x.yaml:2:5: not valid YAML: failed to decode base64 data: " \
        "Incorrect padding"


@pytest.mark.parametrize(("text", "expected"), [
    ("server: !!int abc\n", "1:9: not valid YAML: !!int cannot hold 'abc'"),
    ("a: 1\nserver: !!timestamp notadate\n",
     "2:9: not valid YAML: !!timestamp cannot hold 'notadate'"),
    ("x: [1, !!float zz]\n", "1:8: not valid YAML: !!float cannot hold 'zz'"),
])
def test_an_explicit_tag_the_text_does_not_fit_is_placed(tmp_path: Path, text: str,
                                                         expected: str) -> None:
    """``!!int abc`` used to escape as a bare ValueError (a traceback from
    ``acd serve``); it is a configuration error at the value."""
    assert problem(tmp_path, text) == expected


def test_the_sms_senders_waits(tmp_path: Path) -> None:
    policy = ROOT / "sms.example.yaml"
    flows = f"[{ROOT / 'ivr_flows' / 'hotline.yaml'}, {FLOW}]"
    (tmp_path / "sms.yaml").write_text(
        policy.read_text(encoding="utf-8").replace(
            "flows: [ivr_flows/hotline.yaml, ivr_flows/basic.yaml]", f"flows: {flows}"),
        encoding="utf-8")
    base = (f"flow: {FLOW}\nqueues: [{{name: billing}}, {{name: tech}}, {{name: general}}]\n"
            f"sms:\n  policy: {tmp_path / 'sms.yaml'}\n")
    path = tmp_path / "acd.yaml"
    path.write_text(base, encoding="utf-8")
    sms = load_config(path).sms
    assert sms is not None and (sms.sender.poll_s, sms.sender.idle_s) == (1.0, 60.0)
    path.write_text(base + "  poll_s: 0.5\n  idle_s: 300\n", encoding="utf-8")
    sms = load_config(path).sms
    assert sms is not None and (sms.sender.poll_s, sms.sender.idle_s) == (0.5, 300.0)
    assert problem(tmp_path, base + "  idle_s: 7200\n") == \
        "5:11: sms.idle_s: must be a number from 0.05 to 3600"
    assert problem(tmp_path, base + "  poll_s: 5\n  idle_s: 2\n") == (
        "6:11: sms.idle_s: 2 is shorter than sms.poll_s (5): the longest wait between two "
        "reads of the outbox cannot be shorter than the shortest")
