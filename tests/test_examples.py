"""The shipped examples work as shipped with either sample flow: acd.example.yaml
with ``flow:`` switched to ivr_flows/basic.yaml or ivr_flows/hotline.yaml
loads as ``acd serve`` loads it, and ``acd flow validate --config`` passes;
sms.example.yaml serves both flows (``flows:``) while a node name found in
none of them is still refused with its line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import acd

from acd.loaders.profile_yaml import parse_agents_yaml
from acd.runtime.settings import ConfigError, load_config
from acd.sms.policy import SmsPolicyError, load_sms_policy, parse_sms_policy

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ("basic", "hotline")


def shipped(tmp_path: Path, flow: str) -> Path:
    """The sample files copied to ``tmp_path`` (the configuration's relative
    paths are relative to it), with acd.example.yaml's ``flow:`` naming
    ivr_flows/<flow>.yaml."""
    for f in ROOT.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    for d in ("ivr_flows", "examples"):
        shutil.copytree(ROOT / d, tmp_path / d)
    cfg = tmp_path / "acd.example.yaml"
    text = cfg.read_text(encoding="utf-8")
    line = "flow: ivr_flows/hotline.yaml"
    assert text.count(f"\n{line}") == 1, "acd.example.yaml no longer names the hotline"
    cfg.write_text(text.replace(f"\n{line}", f"\nflow: ivr_flows/{flow}.yaml"),
                   encoding="utf-8")
    return cfg


@pytest.mark.parametrize("flow", FLOWS)
def test_the_sample_configuration_loads_with_either_sample_flow(tmp_path: Path,
                                                                flow: str) -> None:
    config = load_config(shipped(tmp_path, flow))
    assert config.flow.name == flow
    assert config.sms is not None and config.known_queues is not None
    assert config.flow.queues <= config.known_queues  # routing.example.yaml's queues
    rules = {r.name: r for r in config.sms.policy.rules}
    left_ivr = rules["left_ivr"].when.last_node
    assert left_ivr is not None and "main_menu" in left_ivr & set(config.flow.nodes)


@pytest.mark.parametrize("flow", FLOWS)
def test_flow_validate_with_the_sample_configuration_passes(tmp_path: Path,
                                                             flow: str) -> None:
    cfg = shipped(tmp_path, flow)
    r = acd("flow", "validate", str(tmp_path / "ivr_flows" / f"{flow}.yaml"),
            "--config", str(cfg), "--strict")
    assert r.exit_code == 0, r.output
    assert f"flow {flow!r}" in r.output


def test_the_sample_agents_have_the_skills_of_the_sample_queues(tmp_path: Path) -> None:
    config = load_config(shipped(tmp_path, "basic"))
    skills = {q.require.skill for q in config.core.policy.queues.values()}
    agents = parse_agents_yaml((ROOT / "examples" / "agents.yaml").read_text(encoding="utf-8"))
    assert not agents.issues and agents.profiles
    for a in agents.profiles:
        assert set(a.skills) <= skills, a.agent_id
    for skill in skills:  # every queue of the routing example has someone to serve it
        assert any(skill in a.skills for a in agents.profiles), skill


def test_a_node_of_no_flow_is_still_refused_with_its_place(tmp_path: Path) -> None:
    cfg = shipped(tmp_path, "basic")
    sms = tmp_path / "sms.example.yaml"
    text = sms.read_text(encoding="utf-8")
    sms.write_text(text.replace("last_node: [main_menu, anything_else",
                                "last_node: [main_menu, anything_elze"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    line = next(i for i, t in enumerate(sms.read_text().splitlines(), 1) if "anything_elze" in t)
    assert message.startswith(f"{sms}:{line}:"), message
    assert "last_node 'anything_elze' is not a node of the flow nor of the flows this file " \
           "lists (hotline.yaml, basic.yaml)" in message
    r = acd("flow", "validate", str(tmp_path / "ivr_flows" / "basic.yaml"), "--config", str(cfg))
    assert r.exit_code == 2 and "anything_elze" in r.output


RULES = "templates: {a: {zh: x}}\nrules:\n  - {name: r, when: {last_node: [%s]}, template: a}\n"


def test_without_flows_a_rule_names_nodes_of_the_engines_flow_only() -> None:
    parse_sms_policy(RULES % "main_menu", "sms.yaml", known_nodes=["main_menu"])
    with pytest.raises(SmsPolicyError) as info:
        parse_sms_policy(RULES % "main_menu, anything_else", "sms.yaml",
                         known_nodes=["main_menu"])
    assert str(info.value) == ("sms.yaml:3:33: rule 'r': when: last_node 'anything_else' is "
                               "not a node of the flow")


def test_listed_flows_widen_the_names_and_are_checked_themselves(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "ivr_flows", tmp_path / "flows")
    sms = tmp_path / "sms.yaml"
    sms.write_text("flows: [flows/hotline.yaml]\n" + RULES % "main_menu, anything_else",
                   encoding="utf-8")
    policy = load_sms_policy(sms, known_nodes=["main_menu", "goodbye"])  # basic's, say
    assert policy.rules[0].when.last_node == {"main_menu", "anything_else"}
    # loaded on its own (no engine flow), the listed flows are the known nodes
    assert load_sms_policy(sms).rules[0].name == "r"
    # a listed flow that is not there is placed at its entry
    sms.write_text("flows: [flows/hotline.yaml, flows/nope.yaml]\n" + RULES % "main_menu",
                   encoding="utf-8")
    with pytest.raises(SmsPolicyError) as info:
        load_sms_policy(sms, known_nodes=["main_menu"])
    assert str(info.value).startswith(f"{sms}:1:29: flows[1]: ")
    # a broken listed flow reports its own file, line and column
    (tmp_path / "flows" / "bad.yaml").write_text(
        "flow: bad\nstart: a\nnodes:\n  a: {type: play, prompt: x, next: b}\n",
        encoding="utf-8")
    sms.write_text("flows: [flows/bad.yaml]\n" + RULES % "a", encoding="utf-8")
    with pytest.raises(SmsPolicyError) as info:
        load_sms_policy(sms)
    assert str(info.value).startswith(str(tmp_path / "flows" / "bad.yaml") + ":4:")


def test_the_sample_sms_file_copied_alone_says_its_flows_are_relative_to_it(
        tmp_path: Path) -> None:
    """sms.example.yaml copied to /etc/acd/ without ivr_flows/: a clear
    error at the entry, saying where it looked and why (not a warning: the
    missing flow's node names would otherwise be reported as typos)."""
    sms = tmp_path / "sms.yaml"
    shutil.copy(ROOT / "sms.example.yaml", sms)
    with pytest.raises(SmsPolicyError) as info:
        load_sms_policy(sms)
    line = next(i for i, x in enumerate(sms.read_text(encoding="utf-8").splitlines(), 1)
                if x.startswith("flows:"))
    assert str(info.value) == (
        f"{sms}:{line}:9: flows[0]: no flow file 'ivr_flows/hotline.yaml' in "
        f"{tmp_path / 'ivr_flows'}: a path in flows: is relative to this SMS file's folder, "
        "not to the working directory; copy the flows along, write an absolute path, or "
        "drop the entry (the flow acd.yaml runs is always checked)")
    shutil.copytree(ROOT / "ivr_flows", tmp_path / "ivr_flows")
    assert load_sms_policy(sms).rules  # with its flows beside it, it loads
