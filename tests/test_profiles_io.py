"""Reading customers and agents from CSV and YAML: every problem named by
file, line and field, good rows kept beside bad ones."""

from __future__ import annotations

import pytest

from acd.core.profiles import AgentProfile, CustomerProfile
from acd.loaders.profile_checks import agent_problems, customer_problems
from acd.loaders.profile_csv import parse_agents_csv, parse_customers_csv
from acd.loaders.profile_results import Issue, ProfileFileError
from acd.loaders.profile_yaml import parse_agents_yaml
from acd.loaders.profiles import decode, parse_agents

HEADER = ("number,name,vip_level,dialect,language,segment,tags,gender,age,preferred_gender,"
          "preferred_age_band")


def customers(*rows: str, header: str = HEADER) -> str:
    return "\n".join((header, *rows)) + "\n"


def only_error(text: str, file: str = "customers.csv") -> Issue:
    result = parse_customers_csv(text, file)
    assert len(result.errors) == 1, result.errors
    assert result.rejected == 1
    return result.errors[0]


# ---------------------------------------------------------------- customers


def test_a_full_row_becomes_a_profile() -> None:
    r = parse_customers_csv(customers(
        "13800138000,张伟,3,MinNan,ZH,enterprise,vip;key-account,m,52,female,35-44"))
    assert r.errors == [] and r.warnings == [] and r.rejected == 0
    assert r.profiles == [CustomerProfile(
        number="+8613800138000", name="张伟", vip_level=3, dialect="minnan", language="zh",
        segment="enterprise", tags=frozenset({"vip", "key-account"}), gender="M", age=52,
        preferred_gender="F", preferred_age_band="35-44")]
    assert r.rows[0].line == 2
    assert r.rows[0].fields == frozenset(HEADER.split(","))


def test_columns_in_any_order_and_only_number_required() -> None:
    r = parse_customers_csv("vip_level,number\n2,+85291234567\n,13900000000\n")
    assert r.profiles == [CustomerProfile("+85291234567", vip_level=2),
                          CustomerProfile("+8613900000000")]
    assert r.rows[0].fields == frozenset({"number", "vip_level"})


def test_header_names_are_trimmed_and_case_free() -> None:
    r = parse_customers_csv(" Number , NAME \n13800138000, 张三 \n")
    assert r.profiles == [CustomerProfile("+8613800138000", name="张三")]


def test_bom_and_chinese_names() -> None:
    text = "\ufeffnumber,name\n13800138000,林志强\n13900000001,欧阳娜娜\n"
    r = parse_customers_csv(text)
    assert [c.name for c in r.profiles] == ["林志强", "欧阳娜娜"]
    # and from bytes with a BOM
    assert decode(text.encode("utf-8"), "x.csv") == text.removeprefix("\ufeff")
    assert parse_customers_csv(decode(("\ufeff" + text).encode(), "x.csv")).profiles \
        == r.profiles


def test_not_utf8_is_a_file_error_with_the_line() -> None:
    data = "number,name\n13800138000,张三\n".encode("gbk")
    with pytest.raises(ProfileFileError) as exc:
        decode(data, "gbk.csv")
    assert str(exc.value).startswith("gbk.csv:2:13: is not UTF-8 text")  # file:line:column
    assert "CSV UTF-8" in str(exc.value)


def test_vip_level_message_as_documented() -> None:
    text = customers(*["13800000000,a,0,,,,,,,,"] * 12, "13800000013,b,gold,,,,,,,,")
    e = only_error(text)
    assert str(e) == "customers.csv:14: vip_level 'gold' is not a whole number 0-9"
    assert (e.file, e.line, e.field) == ("customers.csv", 14, "vip_level")


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("9", True), ("10", False),
                                           ("-1", False), ("1.5", False), ("", True)])
def test_vip_level_range(value: str, ok: bool) -> None:
    r = parse_customers_csv(f"number,vip_level\n13800138000,{value}\n")
    assert (r.errors == []) is ok
    if not ok:
        assert r.errors[0].problem == f"vip_level {value!r} is not a whole number 0-9"


@pytest.mark.parametrize("number", ["12", "1380013800012345678901", "138-0013-800O",
                                    "1.38E+10", "++86138", "86 138 x", "1-2"])
def test_bad_numbers(number: str) -> None:
    e = only_error(f"number,name\n{number},x\n")
    assert e.line == 2 and e.field == "number"
    assert e.problem == (f"number {number!r} is not a phone number (digits with an optional "
                         "leading +, 3-20 characters)")


def test_number_limits_and_plus() -> None:
    r = parse_customers_csv("number\n110\n+8613800138000\n" + "1" * 20 + "\n")
    assert r.errors == [] and len(r.profiles) == 3
    # numbers that are not full phone numbers are kept as written, with a warning
    assert [c.number for c in r.profiles] == ["110", "+8613800138000", "1" * 20]
    assert [(w.line, w.field) for w in r.warnings] == [(2, "number"), (4, "number")]
    assert str(r.warnings[0]) == (
        "customers.csv:2: warning: number '110' is not a full phone number (no country or "
        "area code could be read): kept as written, so only a caller id written the same "
        "way finds it")


@pytest.mark.parametrize(("written", "stored"), [
    ("13800138000", "+8613800138000"), ("+86 138 0013 8000", "+8613800138000"),
    ("008613800138000", "+8613800138000"), ("8613800138000", "+8613800138000"),
    ("(020) 1234-5678", "+862012345678"), ("+852 9123 4567", "+85291234567"),
])
def test_numbers_are_stored_in_one_form(written: str, stored: str) -> None:
    r = parse_customers_csv(f"number\n{written}\n")
    assert r.errors == [] and r.warnings == []
    assert [c.number for c in r.profiles] == [stored]


def test_the_configured_country_reads_national_numbers() -> None:
    # a country without a numbering plan here: national forms are kept as written
    r = parse_customers_csv("number\n13800138000\n+44 7911 123456\n", country="44")
    assert [c.number for c in r.profiles] == ["13800138000", "+447911123456"]
    assert [w.line for w in r.warnings] == [2]


def test_two_forms_of_one_number_are_one_customer() -> None:
    r = parse_customers_csv("number,name\n+8613800138000,张三\n13800138000,张三丰\n")
    assert [(c.number, c.name) for c in r.profiles] == [("+8613800138000", "张三丰")]
    assert [str(w) for w in r.warnings] == [
        "customers.csv:3: warning: number '+8613800138000' also on line 2; "
        "this later row wins"]


def test_missing_number() -> None:
    e = only_error("number,name\n ,张三\n")
    assert (e.line, e.field, e.problem) == (2, "number", "number is missing")


def test_dialect_and_language_are_lower_cased_and_plain() -> None:
    r = parse_customers_csv("number,dialect,language\n13800138000,Cantonese,EN\n"
                            "13800138001,min nan,zh\n13800138002,粤语,zh-CN\n")
    assert [(c.dialect, c.language) for c in r.profiles] == [("cantonese", "en"),
                                                             ("粤语", "zh-cn")]
    assert [str(e) for e in r.errors] == [
        "customers.csv:3: dialect 'min nan' is not a plain name (letters, digits, - or _, "
        "up to 32 characters)"]


def test_tags() -> None:
    r = parse_customers_csv('number,tags\n13800138000, vip ; complaint;;\n'
                            '13800138001,"vip,complaint"\n'
                            f"13800138002,{'x' * 65}\n")
    assert r.profiles == [CustomerProfile("+8613800138000",
                                          tags=frozenset({"vip", "complaint"}))]
    assert [(e.line, e.field) for e in r.errors] == [(3, "tags"), (4, "tags")]
    assert r.errors[0].problem == ("tags entry 'vip,complaint' contains a comma; "
                                   "separate entries with ';'")
    assert "is 65 characters long (at most 64)" in r.errors[1].problem


@pytest.mark.parametrize(("raw", "gender"), [("F", "F"), ("m", "M"), ("Female", "F"),
                                             ("MALE", "M"), ("", "")])
def test_gender_forms(raw: str, gender: str) -> None:
    r = parse_customers_csv(f"number,gender,preferred_gender\n13800138000,{raw},{raw}\n")
    assert r.profiles[0].gender == gender and r.profiles[0].preferred_gender == gender


def test_bad_gender_and_preferred_gender() -> None:
    r = parse_customers_csv("number,gender,preferred_gender\n13800138000,x,女\n")
    assert r.rejected == 1 and r.profiles == []
    assert [str(e) for e in r.errors] == [
        "customers.csv:2: gender 'x' is not F or M (female or male also accepted)",
        "customers.csv:2: preferred_gender '女' is not F or M (female or male also accepted)"]


@pytest.mark.parametrize(("raw", "ok"), [("0", True), ("120", True), ("121", False),
                                         ("-3", False), ("forty", False), ("40.5", False)])
def test_age(raw: str, ok: bool) -> None:
    r = parse_customers_csv(f"number,age\n13800138000,{raw}\n")
    if ok:
        assert r.profiles[0].age == int(raw)
    else:
        assert r.errors[0].problem == f"age {raw!r} is not a whole number 0-120"
    assert parse_customers_csv("number,age\n13800138000,\n").profiles[0].age is None


def test_preferred_age_band() -> None:
    e = only_error("number,preferred_age_band\n13800138000,60+\n")
    assert e.problem == "preferred_age_band '60+' is not one of 18-24, 25-34, 35-44, 45-54, 55+"


def test_name_too_long_and_control_characters() -> None:
    r = parse_customers_csv(f"number,name\n13800138000,{'张' * 129}\n"
                            '13800138001,"a\tb"\n13800138002,' + "张" * 128 + "\n")
    assert [(e.line, e.problem) for e in r.errors] == [
        (2, "name is 129 characters long (at most 128)"),
        (3, "name contains a line break or another control character")]
    assert len(r.profiles) == 1


def test_segment_too_long() -> None:
    e = only_error(f"number,segment\n13800138000,{'s' * 65}\n")
    assert e.problem == "segment is 65 characters long (at most 64)"


def test_every_problem_of_a_row_is_reported_once_rejected() -> None:
    r = parse_customers_csv(customers("1,x,gold,a b,,,,x,200,y,1-2"))
    assert r.rejected == 1
    assert [e.field for e in r.errors] == ["number", "vip_level", "dialect", "gender", "age",
                                           "preferred_gender", "preferred_age_band"]
    assert {e.line for e in r.errors} == {2}


def test_good_rows_are_kept_beside_bad_ones() -> None:
    r = parse_customers_csv(customers(
        "13800138000,张三,1,,,,,,,,",
        "13800138001,李四,gold,,,,,,,,",
        "13800138002,王五,2,,,,,,,,",
        "x,赵六,0,,,,,,,,",
        "13800138004,钱七,0,,,,,,,,"))
    assert [c.name for c in r.profiles] == ["张三", "王五", "钱七"]
    assert [e.line for e in r.errors] == [3, 5]
    assert r.rejected == 2


def test_wrong_number_of_values() -> None:
    r = parse_customers_csv("number,name,vip_level\n13800138000,张三\n13800138001,a,1,extra\n")
    assert [(e.line, e.field, e.problem) for e in r.errors] == [
        (2, "", "has 2 values but the header has 3 columns"),
        (3, "", "has 4 values but the header has 3 columns")]


def test_an_unclosed_quote_is_pointed_at_and_swallows_nothing() -> None:
    r = parse_customers_csv('number,name\n13800138000,"张三\n13800138001,李四\n')
    assert len(r.errors) == 1
    assert r.errors[0].line == 2
    assert 'a " quote opened on this line is not closed' in r.errors[0].problem
    assert [c.name for c in r.profiles] == ["李四"] and r.rejected == 1


def test_an_unclosed_quote_in_a_long_file_costs_its_line_only() -> None:
    rows = [f"1380013{i:04d},客户{i}" for i in range(2000)]
    rows[5] = '13800135555,"张三'
    rows[1500] = '13800136666,"李四'
    r = parse_customers_csv("number,name\n" + "\n".join(rows) + "\n")
    assert [(e.line, e.problem.split(" is ")[0]) for e in r.errors] == [
        (7, 'a " quote opened on this line'), (1502, 'a " quote opened on this line')]
    assert len(r.profiles) == 1998 and r.rejected == 2


def test_a_row_is_one_line_and_every_line_is_read() -> None:
    """No value may hold a line break: a quoted one over several lines is
    an error on each of its lines, and every line is read as a row."""
    text = ('number,segment,vip_level\n'
            '13800138000,"multi\n'  # line 2: the quote is not closed on it
            'line",1\n'  # line 3: read as a row of its own
            '\n'  # line 4, blank: skipped
            ',,\n'  # line 5, empty cells only: skipped
            '13800138001,x,gold\n'  # line 6
            '13800138002,y,1\n')  # line 7
    r = parse_customers_csv(text)
    assert [(e.line, e.field) for e in r.errors] == [(2, ""), (3, ""), (6, "vip_level")]
    assert "is not closed on it" in r.errors[0].problem
    assert [c.number for c in r.profiles] == ["+8613800138002"]


def test_crlf_line_ends() -> None:
    r = parse_customers_csv("number,vip_level\r\n13800138000,1\r\n13800138001,x\r\n")
    assert len(r.profiles) == 1 and r.errors[0].line == 3


def test_duplicate_number_later_row_wins_with_a_warning() -> None:
    r = parse_customers_csv(customers("13800138000,张三,1,,,,,,,,",
                                      "13900000000,李四,0,,,,,,,,",
                                      "13800138000,张三丰,2,,,,,,,,"))
    assert r.errors == [] and r.rejected == 0
    assert [(c.number, c.name) for c in r.profiles] == [("+8613900000000", "李四"),
                                                        ("+8613800138000", "张三丰")]
    assert [str(w) for w in r.warnings] == [
        "customers.csv:4: warning: number '+8613800138000' also on line 2; "
        "this later row wins"]
    assert r.warnings[0].warning and r.warnings[0].field == "number"
    assert [i.line for i in r.issues] == [4]


def test_a_bad_later_duplicate_leaves_the_earlier_row() -> None:
    r = parse_customers_csv("number,vip_level\n13800138000,1\n13800138000,gold\n")
    assert r.profiles == [CustomerProfile("+8613800138000", vip_level=1)]
    assert r.warnings == [] and r.rejected == 1


# ------------------------------------------------------------- file errors


@pytest.mark.parametrize(("text", "words"), [
    ("", "the file is empty; the first line must be the header"),
    ("\n\n", "the file is empty"),
    ("number,nmae,colour\n1,2,3\n",
     "unknown columns 'nmae', 'colour' (known: number, name, vip_level,"),
    ("name,vip_level\nx,1\n", "the header has no 'number' column (it is required)"),
    ("number,name,name\n", "column 'name' appears twice in the header"),
    ("number,,name\n", "column 2 of the header has no name"),
    ("number;name;vip_level\n13800138000;x;1\n",
     "the header is one column 'number;name;vip_level': columns must be separated by commas"),
])
def test_header_problems_refuse_the_file(text: str, words: str) -> None:
    with pytest.raises(ProfileFileError) as exc:
        parse_customers_csv(text, "c.csv")
    assert words in str(exc.value)
    assert str(exc.value).startswith("c.csv:1: ")
    assert exc.value.issue.line == 1


def test_only_a_header_is_no_rows() -> None:
    r = parse_customers_csv(HEADER + "\n")
    assert r.rows == [] and r.errors == []


# ------------------------------------------------------------------ agents

AGENT_HEADER = ("agent_id,extension,name,skills,dialects,languages,gender,age_band,groups,"
                "vip_qualified")


def agents_csv(*rows: str) -> str:
    return "\n".join((AGENT_HEADER, *rows)) + "\n"


def test_agents_csv_full_row() -> None:
    r = parse_agents_csv(agents_csv(
        "a1001,1001,林美玲,billing:8; vip:7,MinNan:10;mandarin:9,ZH;en,female,35-44,"
        "xiamen;senior,yes"))
    assert r.errors == []
    assert r.profiles == [AgentProfile(
        agent_id="a1001", extension="1001", name="林美玲", skills={"billing": 8, "vip": 7},
        dialects={"minnan": 10, "mandarin": 9}, languages=frozenset({"zh", "en"}),
        gender="F", age_band="35-44", groups=frozenset({"xiamen", "senior"}),
        vip_qualified=True)]


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("Yes", True), ("1", True),
                                            ("false", False), ("NO", False), ("0", False),
                                            ("", False)])
def test_vip_qualified_forms(raw: str, value: bool) -> None:
    r = parse_agents_csv(f"agent_id,extension,vip_qualified\na1,1001,{raw}\n")
    assert r.profiles[0].vip_qualified is value


def test_vip_qualified_bad() -> None:
    r = parse_agents_csv("agent_id,extension,vip_qualified\na1,1001,maybe\n")
    assert str(r.errors[0]) == ("agents.csv:2: vip_qualified 'maybe' is not true or false "
                                "(yes/no and 1/0 also accepted)")


@pytest.mark.parametrize("ext", ["1", "10a", "1234567890123456", "１００１"])
def test_bad_extensions(ext: str) -> None:
    r = parse_agents_csv(f"agent_id,extension\na1,{ext}\n")
    assert r.rejected == 1
    assert (r.errors[0].line, r.errors[0].field) == (2, "extension")
    assert r.errors[0].problem.startswith(f"extension {ext!r} is not an extension (2-15 digits")


def test_extension_limits() -> None:
    r = parse_agents_csv("agent_id,extension\na1,10\na2,123456789012345\n")
    assert r.errors == [] and [a.extension for a in r.profiles] == ["10", "123456789012345"]


@pytest.mark.parametrize(("skills", "problem"), [
    ("billing", "skills entry 'billing' has no level; write NAME:LEVEL, e.g. billing:5"),
    ("billing:11", "skills entry 'billing:11': level '11' is not a whole number 1-10"),
    ("billing:0", "skills entry 'billing:0': level '0' is not a whole number 1-10"),
    ("billing:high", "skills entry 'billing:high': level 'high' is not a whole number 1-10"),
    ("billing:5;billing:3", "skills entry 'billing' appears twice"),
    (":5", "skills entry ':5' has no name"),
    ("bill ing:5", "skills entry 'bill ing' is not a plain name"),
])
def test_bad_skills(skills: str, problem: str) -> None:
    r = parse_agents_csv(f'agent_id,extension,skills\na1,1001,"{skills}"\n')
    assert r.rejected == 1 and (r.errors[0].line, r.errors[0].field) == (2, "skills")
    assert r.errors[0].problem.startswith(problem)


def test_bad_dialect_level_names_the_dialects_column() -> None:
    r = parse_agents_csv("agent_id,extension,dialects\na1,1001,minnan:8;wu:x\n")
    assert str(r.errors[0]) == ("agents.csv:2: dialects entry 'wu:x': level 'x' is not "
                                "a whole number 1-10")


def test_agent_gender_age_band_and_id() -> None:
    r = parse_agents_csv(agents_csv("a1,1001,,,,,X,60+,,",
                                    ",1002,,,,,,,,",
                                    "a 3,1003,,,,,,,,"))
    assert [(e.line, e.field) for e in r.errors] == [(2, "gender"), (2, "age_band"),
                                                     (3, "agent_id"), (4, "agent_id")]
    assert r.errors[1].problem == "age_band '60+' is not one of 18-24, 25-34, 35-44, 45-54, 55+"
    assert r.errors[2].problem == "agent_id is missing"
    assert r.rejected == 3


def test_agents_csv_needs_the_extension_column() -> None:
    with pytest.raises(ProfileFileError, match="the header has no 'extension' column"):
        parse_agents_csv("agent_id,name\na1,x\n")


def test_agents_csv_duplicate_id() -> None:
    r = parse_agents_csv("agent_id,extension\na1,1001\na1,1002\n")
    assert [a.extension for a in r.profiles] == ["1002"]
    assert r.warnings[0].problem == "agent_id 'a1' also on line 2; this later row wins"


AGENTS_YAML = """\
# a comment
agents:
  - agent_id: a1001
    extension: 1001
    name: 林美玲
    skills: {billing: 8, vip: 7}
    dialects:
      MinNan: 10
      mandarin: 9
    languages: [zh, EN]
    gender: F
    age_band: 35-44
    groups: [xiamen]
    vip_qualified: true
  - {agent_id: a1002, extension: "1002", skills: {general: 5}, gender: ~}
"""


def test_agents_yaml() -> None:
    r = parse_agents_yaml(AGENTS_YAML)
    assert r.errors == [] and r.warnings == []
    a1, a2 = r.profiles
    assert a1 == AgentProfile(
        agent_id="a1001", extension="1001", name="林美玲", skills={"billing": 8, "vip": 7},
        dialects={"minnan": 10, "mandarin": 9}, languages=frozenset({"zh", "en"}), gender="F",
        age_band="35-44", groups=frozenset({"xiamen"}), vip_qualified=True)
    assert a2 == AgentProfile("a1002", "1002", skills={"general": 5})
    assert [row.line for row in r.rows] == [3, 15]
    assert r.rows[1].fields == frozenset({"agent_id", "extension", "skills", "gender"})


def test_agents_yaml_as_a_plain_list_and_strings_for_lists() -> None:
    r = parse_agents_yaml("- agent_id: a1\n  extension: '0101'\n  groups: night\n"
                          "  languages: zh;en\n  skills: 'billing:5;tech:2'\n")
    assert r.profiles == [AgentProfile("a1", "0101", skills={"billing": 5, "tech": 2},
                                       groups=frozenset({"night"}),
                                       languages=frozenset({"zh", "en"}))]


def test_agents_yaml_errors_name_the_line_of_the_value() -> None:
    text = """\
agents:
  - agent_id: a1
    extension: 1001
    skills: {billing: 11}
  - agent_id: a2
    extension: 1a
    colour: red
    gender: X
  - just a text
  - agent_id: a4
    name: no extension
  - agent_id: a5
    extension: 1005
    skills: [billing, vip]
  - agent_id: a6
    extension: 1006
    extension: 1007
  - agent_id: a7
    extension: 1007
    groups: {a: 1}
    vip_qualified: perhaps
  - agent_id: a8
    extension: 1008
"""
    r = parse_agents_yaml(text, "team.yaml")
    assert [str(e) for e in r.errors] == [
        "team.yaml:4: skills entry 'billing:11': level '11' is not a whole number 1-10",
        "team.yaml:6: extension '1a' is not an extension (2-15 digits; the dialplan pattern "
        "_X. needs at least 2)",
        "team.yaml:7: unknown field 'colour' (known: agent_id, extension, name, skills, "
        "dialects, languages, gender, age_band, groups, vip_qualified)",
        "team.yaml:8: gender 'X' is not F or M (female or male also accepted)",
        "team.yaml:9: the item is 'just a text', not a mapping of fields "
        "(agent_id: ..., extension: ...)",
        "team.yaml:10: extension is missing",
        "team.yaml:14: skills must be a mapping of names to levels, e.g. {billing: 5}, "
        "not a list",
        "team.yaml:17: extension appears twice in this agent",
        "team.yaml:20: groups must be a list of names, not a mapping",
        "team.yaml:21: vip_qualified 'perhaps' is not true or false "
        "(yes/no and 1/0 also accepted)",
    ]
    assert r.rejected == 7
    assert [a.agent_id for a in r.profiles] == ["a8"]


def test_agents_yaml_scalar_where_a_single_value_is_expected() -> None:
    r = parse_agents_yaml("- agent_id: [a, b]\n  extension: 1001\n")
    assert str(r.errors[0]) == "agents.yaml:1: agent_id must be a single value, not a list"


def test_agents_yaml_duplicate_id_warns() -> None:
    r = parse_agents_yaml("- {agent_id: a1, extension: 1001}\n- {agent_id: a1, extension: 1002}\n")
    assert [a.extension for a in r.profiles] == ["1002"]
    assert str(r.warnings[0]) == ("agents.yaml:2: warning: agent_id 'a1' also on line 1; "
                                  "this later row wins")


@pytest.mark.parametrize(("text", "line", "words"), [
    ("", 1, "the file is empty"),
    ("agents:\n  - {agent_id: a1\n", 3, "is not valid YAML"),
    ("people: []\n", 1, "a mapping with just the key 'agents'"),
    ("agents: {a1: 1001}\n", 1, "the agents must be a list"),
    ("just text\n", 1, "the agents must be a list"),
])
def test_agents_yaml_file_errors(text: str, line: int, words: str) -> None:
    with pytest.raises(ProfileFileError) as exc:
        parse_agents_yaml(text, "a.yaml")
    assert exc.value.issue.line == line
    assert words in str(exc.value)


def test_agents_yaml_bom() -> None:
    assert parse_agents_yaml("\ufeff- {agent_id: a1, extension: 1001}\n").profiles \
        == [AgentProfile("a1", "1001")]


def test_parse_agents_by_extension() -> None:
    assert parse_agents("agent_id,extension\na1,1001\n", "x/agents.CSV").profiles \
        == [AgentProfile("a1", "1001")]
    assert parse_agents("- {agent_id: a1, extension: 1001}\n", "agents.yml").profiles \
        == [AgentProfile("a1", "1001")]
    with pytest.raises(ProfileFileError, match=r"the name must end in \.csv, \.yaml or \.yml"):
        parse_agents("", "agents.txt")


# ----------------------------------------------------- checks on profiles


def test_profile_checks() -> None:
    assert customer_problems(CustomerProfile("13800138000", name="张三", dialect="minnan")) == []
    assert customer_problems(CustomerProfile("12", dialect="MinNan", name="x" * 129,
                                             vip_level=10, tags=frozenset({"a,b"}))) == [
        "number '12' is not a phone number (digits with an optional leading +, "
        "3-20 characters)",
        "name is 129 characters long (at most 128)",
        "vip_level '10' is not a whole number 0-9",
        "dialect 'MinNan' should be written 'minnan'",
        "tags entry 'a,b' contains a comma; separate entries with ';'",
    ]
    assert agent_problems(AgentProfile("a1", "1001", skills={"billing": 5})) == []
    assert agent_problems(AgentProfile("", "1", dialects={"Wu": 5})) == [
        "agent_id is missing",
        "extension '1' is not an extension (2-15 digits; the dialplan pattern _X. needs "
        "at least 2)",
        "dialects {'Wu': 5} should be written {'wu': 5}",
    ]
