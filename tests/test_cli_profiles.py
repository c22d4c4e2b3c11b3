"""`acd customers ...` and `acd agents ...` through click's CliRunner."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import acd

from acd.adapters.profiles_store import ProfileStore
from acd.adapters.storage import Database
from acd.core.profiles import AgentProfile, CustomerProfile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory (no acd.yaml): relative file names, acd.db here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sqlite_file_url(path: Path) -> str:
    """The address of the SQLite database file ``path`` (not a folder, unlike
    ``helpers.db_url``)."""
    return f"sqlite+aiosqlite:///{path}"


def stored_customers(url: str, *numbers: str) -> dict[str, CustomerProfile]:
    async def go() -> dict[str, CustomerProfile]:
        db = Database(url)
        try:
            await db.create()
            return await ProfileStore(db).customers_by_number(numbers)
        finally:
            await db.dispose()
    return asyncio.run(go())


def stored_agents(url: str) -> list[AgentProfile]:
    async def go() -> list[AgentProfile]:
        db = Database(url)
        try:
            await db.create()
            return await ProfileStore(db).agents()
        finally:
            await db.dispose()
    return asyncio.run(go())


BAD_CUSTOMERS = """\
number,name,vip_level,dialect
13800138000,张三,1,minnan
13800138001,李四,gold,minnan
13800138002,王五,2,cantonese
abc,赵六,0,
13800138004,钱七,0,wu
13800138000,张三丰,3,minnan
"""


def test_help_lists_the_profile_commands() -> None:
    out = acd("--help").output
    assert "customers" in out and "agents" in out
    assert "--skill" in acd("agents", "set", "--help").output
    assert "--skill" in acd("agents", "live", "set", "--help").output


def test_one_agents_group_says_which_command_touches_what() -> None:
    out = acd("agents", "--help").output
    commands = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    assert {"import", "list", "set", "live"} <= set(commands)
    for name in ("import", "list", "set"):
        assert "database" in commands[name], commands[name]
    assert "RUNNING engine" in commands["live"]
    live = acd("agents", "live", "--help").output
    for name in ("show", "login", "logout", "ready", "pause", "set"):
        assert f"  {name} " in live


def test_customers_import_with_bad_rows(here: Path) -> None:
    (here / "customers.csv").write_text(BAD_CUSTOMERS, encoding="utf-8")
    r = acd("customers", "import", "customers.csv")
    assert r.exit_code == 1, r.output
    assert "customers.csv:3" in r.output and "customers.csv:5" in r.output
    assert "vip_level 'gold' is not a whole number 0-9" in r.output
    assert "number 'abc' is not a phone number" in r.output
    assert "customers.csv:7" in r.output and "this later row wins" in r.output
    assert "imported 3 new, 0 updated, 2 rows rejected" in r.output
    # the good rows are in the database (acd.db here: no acd.yaml)
    got = stored_customers(sqlite_file_url(here / "acd.db"), "13800138000", "13800138001",
                           "13800138002", "13800138004")
    assert sorted(got) == ["13800138000", "13800138002", "13800138004"]
    assert got["13800138000"].name == "张三丰" and got["13800138000"].vip_level == 3


def test_customers_import_examples_then_show(here: Path) -> None:
    url = sqlite_file_url(here / "x.db")
    r = acd("customers", "import", str(EXAMPLES / "customers.csv"), "--db", url)
    assert r.exit_code == 0, r.output
    assert "rows rejected" in r.output and " 0 rows rejected" in r.output
    n = int(r.output.split("imported ")[1].split(" new")[0])
    assert 25 <= n <= 40
    r = acd("customers", "show", "13800138000", "--db", url)
    assert r.exit_code == 0, r.output
    assert "张伟" in r.output and "minnan" in r.output and "key-account, vip" in r.output
    # a second import updates
    r = acd("customers", "import", str(EXAMPLES / "customers.csv"), "--db", url)
    assert f"imported 0 new, {n} updated, 0 rows rejected" in r.output


def test_one_number_in_every_form(here: Path) -> None:
    (here / "c.csv").write_text("number,name,vip_level\n+8613800138000,林先生,3\n"
                                "10086,客服,0\n", encoding="utf-8")
    r = acd("customers", "import", "c.csv")
    assert r.exit_code == 0, r.output
    assert "c.csv:3" in r.output and "number '10086' is not a full phone number" in r.output
    assert "imported 2 new, 0 updated, 0 rows rejected" in r.output
    assert "1 warning (the rows were imported)" in r.output
    for form in ("13800138000", "008613800138000", "+86 138 0013 8000"):
        r = acd("customers", "show", form)
        assert r.exit_code == 0, r.output
        assert "customer +8613800138000" in r.output and "林先生" in r.output


def test_country_code_comes_from_acd_yaml(here: Path) -> None:
    (here / "c.csv").write_text("number\n07911123456\n", encoding="utf-8")
    (here / "acd.yaml").write_text("country_code: 44\n", encoding="utf-8")
    r = acd("customers", "import", "c.csv")  # no numbering plan for 44: kept as written
    assert r.exit_code == 0 and "not a full phone number" in r.output, r.output
    (here / "acd.yaml").write_text("country_code: 86\n", encoding="utf-8")
    r = acd("customers", "import", "c.csv")  # 0 + 10 digits: a Chinese landline
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    assert "customer +867911123456" in acd("customers", "show", "07911123456").output
    (here / "acd.yaml").write_text("country_code: china\n", encoding="utf-8")
    r = acd("customers", "show", "13800138000")
    assert r.exit_code != 0
    assert "acd.yaml: country_code: 'china' is not a country calling code" in r.output


def test_customers_show_unknown(here: Path) -> None:
    sqlite3.connect(here / "acd.db").close()  # a database (read-only commands make none)
    r = acd("customers", "show", "999")
    assert r.exit_code == 1
    assert "no customer with number '999' is stored" in r.output


def test_import_of_some_columns_keeps_the_others(here: Path) -> None:
    url = sqlite_file_url(here / "x.db")
    acd("customers", "import", str(EXAMPLES / "customers.csv"), "--db", url)
    (here / "vip.csv").write_text("number,vip_level\n13812345678,2\n", encoding="utf-8")
    r = acd("customers", "import", "vip.csv", "--db", url)
    assert "imported 0 new, 1 updated, 0 rows rejected" in r.output
    c = stored_customers(url, "13812345678")["13812345678"]
    assert (c.name, c.vip_level, c.dialect) == ("王芳", 2, "mandarin")


@pytest.mark.parametrize(("content", "words"), [
    (b"number,nmae\n13800138000,x\n", "unknown column 'nmae'"),
    ("number,name\n13800138000,张三\n".encode("gbk"), "is not UTF-8 text"),
    (b"", "the file is empty"),
])
def test_unreadable_customer_files_exit_2(here: Path, content: bytes, words: str) -> None:
    (here / "c.csv").write_bytes(content)
    r = acd("customers", "import", "c.csv")
    assert r.exit_code == 2, r.output
    assert words in r.output
    assert "nothing imported" in r.output


def test_a_missing_file_exits_2(here: Path) -> None:
    r = acd("customers", "import", "nope.csv")
    assert r.exit_code == 2
    assert "nope.csv: cannot be read" in r.output


def test_agents_import_examples_and_list(here: Path) -> None:
    r = acd("agents", "import", str(EXAMPLES / "agents.yaml"))
    assert r.exit_code == 0, r.output
    assert "imported 12 new, 0 updated, 0 rows rejected" in r.output
    r = acd("agents", "list")
    assert r.exit_code == 0
    for word in ("a1001", "1012", "billing:8", "minnan:10", "35-44", "xiamen", "yes"):
        assert word in r.output
    assert len(stored_agents(sqlite_file_url(here / "acd.db"))) == 12


def test_agents_import_csv_with_bad_rows(here: Path) -> None:
    (here / "agents.csv").write_text(
        "agent_id,extension,skills,vip_qualified\n"
        "a1,1001,billing:5;vip:3,yes\n"
        "a2,1,billing:5,no\n"
        "a3,1003,billing:11,no\n"
        "a4,1004,tech:4,maybe\n", encoding="utf-8")
    r = acd("agents", "import", "agents.csv")
    assert r.exit_code == 1
    assert "agents.csv:3" in r.output and "extension '1' is not an extension" in r.output
    assert "agents.csv:4" in r.output and "level '11' is not a whole number 1-10" in r.output
    assert "agents.csv:5" in r.output and "vip_qualified 'maybe'" in r.output
    assert "imported 1 new, 0 updated, 3 rows rejected" in r.output
    assert [a.agent_id for a in stored_agents(sqlite_file_url(here / "acd.db"))] == ["a1"]


def test_agents_import_yaml_errors_by_line(here: Path) -> None:
    (here / "team.yml").write_text(
        "- agent_id: a1\n  extension: 1001\n- agent_id: a2\n  extension: 1002\n  colour: red\n",
        encoding="utf-8")
    r = acd("agents", "import", "team.yml")
    assert r.exit_code == 1
    assert "team.yml:5" in r.output and "unknown field 'colour'" in r.output


def test_agents_import_unknown_format_exits_2(here: Path) -> None:
    (here / "agents.txt").write_text("a1 1001\n", encoding="utf-8")
    r = acd("agents", "import", "agents.txt")
    assert r.exit_code == 2
    assert "the name must end in .csv, .yaml or .yml" in r.output


def test_agents_set_then_list_shows_the_change(here: Path) -> None:
    acd("agents", "import", str(EXAMPLES / "agents.yaml"))
    r = acd("agents", "set", "a1002", "--skill", "vip=6", "--skill", "billing=9",
            "--drop-skill", "general", "--dialect", "Cantonese=4", "--gender", "female",
            "--age-band", "35-44", "--group", "night", "--group", "xiamen", "--vip",
            "--extension", "2002")
    assert r.exit_code == 0, r.output
    assert "agent a1002 updated" in r.output
    r = acd("agents", "list")
    line = next(x for x in r.output.splitlines() if "a1002" in x)
    for word in ("2002", "billing:9", "vip:6", "cantonese:4", "35-44", "night", "yes"):
        assert word in line, (word, line)
    assert "general" not in line
    a = next(a for a in stored_agents(sqlite_file_url(here / "acd.db")) if a.agent_id == "a1002")
    assert a == AgentProfile(
        agent_id="a1002", extension="2002", name="陈志明", skills={"billing": 9, "vip": 6},
        dialects={"minnan": 8, "mandarin": 10, "cantonese": 4}, languages=frozenset({"zh"}),
        gender="F", age_band="35-44", groups=frozenset({"night", "xiamen"}), vip_qualified=True)
    r = acd("agents", "set", "a1002", "--no-vip", "--drop-dialect", "cantonese")
    assert r.exit_code == 0
    a = next(a for a in stored_agents(sqlite_file_url(here / "acd.db")) if a.agent_id == "a1002")
    assert not a.vip_qualified and "cantonese" not in a.dialects


@pytest.mark.parametrize(("args", "option", "words"), [
    (["--skill", "billing=11"], "--skill", "level '11' is not a whole number 1-10"),
    (["--skill", "billing"], "--skill", "'billing' must be NAME=LEVEL, e.g. billing=5"),
    (["--dialect", "min nan=5"], "--dialect", "'min nan' is not a plain name"),
    (["--gender", "X"], "--gender", "'X' is not F or M"),
    (["--age-band", "60+"], "--age-band", "'60+' is not one of"),
    (["--extension", "1"], "--extension", "'1' is not an extension (2-15 digits"),
    (["--group", "a;b"], "--group", "give one group per --group"),
    (["--drop-skill", "cooking"], "--drop-skill", "agent a1001 has no skill 'cooking'"),
    (["--skill", "vip=3", "--drop-skill", "vip"], "--drop-skill",
     "skill 'vip' is both set and dropped"),
])
def test_agents_set_bad_values_name_the_option(here: Path, args: list[str], option: str,
                                               words: str) -> None:
    acd("agents", "import", str(EXAMPLES / "agents.yaml"))
    before = stored_agents(sqlite_file_url(here / "acd.db"))
    r = acd("agents", "set", "a1001", *args)
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{option}'" in r.output
    assert words in r.output
    assert stored_agents(sqlite_file_url(here / "acd.db")) == before


def test_agents_set_needs_a_change_and_a_known_agent(here: Path) -> None:
    r = acd("agents", "set", "a1001")
    assert r.exit_code == 2 and "nothing to change" in r.output
    r = acd("agents", "set", "ghost", "--vip")
    assert r.exit_code == 1
    assert "no agent 'ghost' is stored" in r.output


def test_agents_list_empty(here: Path) -> None:
    sqlite3.connect(here / "acd.db").close()  # a database (read-only commands make none)
    r = acd("agents", "list")
    assert r.exit_code == 0 and "no agents stored" in r.output


def test_db_default_comes_from_acd_yaml(here: Path) -> None:
    (here / "acd.yaml").write_text(f"database: {sqlite_file_url(here / 'from-config.db')}\n"
                                   "ami: {host: 127.0.0.1}\n", encoding="utf-8")
    shutil.copy(EXAMPLES / "agents.yaml", here / "agents.yaml")
    r = acd("agents", "import", "agents.yaml")
    assert r.exit_code == 0, r.output
    assert (here / "from-config.db").exists() and not (here / "acd.db").exists()
    assert len(stored_agents(sqlite_file_url(here / "from-config.db"))) == 12


def test_a_database_that_cannot_be_reached_exits_3(here: Path) -> None:
    r = acd("agents", "list", "--db", "postgresql+asyncpg://u:secret@127.0.0.1:1/x")
    assert r.exit_code == 3
    assert "database error" in r.output and "secret" not in r.output


def test_import_problems_read_file_line_column_and_no_row_taken_exits_2(here: Path) -> None:
    """A byte that is not UTF-8 is placed as file:line:column: like every
    other reader; a file none of whose rows could be taken imports nothing
    and exits 2, as one that cannot be read; one good row kept: 1."""
    (here / "agents.csv").write_bytes(b"agent_id,extension\na1001,1001 caf\xe9\n")
    r = acd("agents", "import", "agents.csv")
    assert r.exit_code == 2, r.output
    assert "agents.csv:2:15: is not UTF-8 text (byte 0xe9" in " ".join(r.output.split())
    assert "(column" not in r.output
    (here / "agents.csv").write_text('agent_id,extension,skills\na1,1001,"billing:5\n',
                                     encoding="utf-8")
    r = acd("agents", "import", "agents.csv")
    assert r.exit_code == 2, r.output
    assert "agents.csv:2" in r.output and "nothing imported" in r.output
    assert "imported" not in r.output.replace("nothing imported", "")
    (here / "agents.csv").write_text('agent_id,extension,skills\na1,1001,"billing:5\n'
                                     "a2,1002,billing:5\n", encoding="utf-8")
    r = acd("agents", "import", "agents.csv")
    assert r.exit_code == 1 and "imported 1 new, 0 updated, 1 rows rejected" in r.output
    (here / "team.yaml").write_text("- {agent_id: a1, extension: '1001'}\n- [\n",
                                    encoding="utf-8")
    r = acd("agents", "import", "team.yaml")
    assert r.exit_code == 2 and "team.yaml:3:1: is not valid YAML" in r.output, r.output
