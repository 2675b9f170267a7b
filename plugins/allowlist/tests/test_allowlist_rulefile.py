"""Rules files: CSV and TOML, read all or nothing, every problem reported by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate_allowlist.rulefile import MAX_REPORTED, RulesFileError, parse_rules_file

CSV = """\
# Blocked and allowed numbers (comments and blank lines are skipped)
action,caller,callee,callee_type,name

deny,+1900*,,,premium rate
allow,,+15612600684,number,my phone
deny,private
"DENY"," 46 70 123 45 67 ",,,"quoted, with a comma"
"""

TOML = """\
# rules for the office line
[[rules]]
action = "allow"
callee = ["+15612600684", "+4420*"]

[[rules]]
action = "deny"
caller = "private"
name = "no anonymous calls"
"""


def parse(text: str | bytes, name: str = "rules.csv", first_ordinal: int = 0):
    data = text.encode() if isinstance(text, str) else text
    return parse_rules_file(data, Path("/etc/callgate") / name, first_ordinal=first_ordinal)


def test_a_csv_file_gives_one_rule_per_row_with_its_line():
    rules = parse(CSV, first_ordinal=5)
    assert [(r.action, r.source, r.ordinal) for r in rules] == [
        ("deny", "rules.csv:4", 5), ("allow", "rules.csv:5", 6), ("deny", "rules.csv:6", 7), ("deny", "rules.csv:7", 8)]
    assert rules[0].caller[0].value == "+1900" and rules[0].caller[0].kind == "prefix"
    assert rules[1].callee_types == {"number"} and rules[1].name == "my phone"
    assert rules[3].caller[0].value == "+46701234567" and rules[3].name == "quoted, with a comma"


def test_columns_may_come_in_any_order_and_case_and_an_excel_bom_is_fine():
    rules = parse("\ufeffCaller,ACTION\n+46701234567,allow\n".encode("utf-8"))
    assert [(r.action, r.caller[0].value) for r in rules] == [("allow", "+46701234567")]


def test_a_header_only_csv_is_an_empty_list_but_an_empty_file_is_an_error():
    assert parse("action,caller\n") == []
    with pytest.raises(RulesFileError, match="no header row"):
        parse("")
    with pytest.raises(RulesFileError, match="no header row"):
        parse("# only a comment\n\n")


@pytest.mark.parametrize(("text", "message"), [
    ("caller\n+46701234567\n", "line 1: no 'action' column"),
    ("action,caller,number\n", "line 1: unknown column(s) 'number'; columns are action, caller, callee"),
    ("action,caller,caller\n", "line 1: column(s) 'caller' appear twice"),
    ("action,caller\nallow,+46701234567,extra\n", "line 2: 3 cells but the header names 2 columns"),
    ("action,caller\npermit,+46701234567\n", "line 2: action: must be allow or deny, got 'permit'"),
    ("action,caller\n,+46701234567\n", "line 2: action: must be allow or deny, got ''"),
    ("action,caller\n\nallow,+46abc\n", "line 3: caller: '+46abc' is not a phone number"),
    ("action,domain\nallow,voip\n", "line 2: domain: 'voip' is not one of"),
    ('action,caller\nallow,"+4670\n1234"\nallow,+1\ndeny,re:(\n', "line 5: caller: 're:(' is not a valid regular"),
])
def test_csv_problems_name_the_line_and_the_fix(text, message):
    with pytest.raises(RulesFileError) as info:
        parse(text)
    assert "/etc/callgate/rules.csv:" in str(info.value) and "file not loaded" in str(info.value)
    assert message in str(info.value)


def test_one_bad_row_rejects_the_whole_file_and_every_problem_is_counted():
    rows = "\n".join(["action,caller"] + ["deny,+46701234567"] * 100 + ["deny,bad"] * 25) + "\n"
    with pytest.raises(RulesFileError) as info:
        parse(rows)
    error = info.value
    assert error.total == 25 and len(error.problems) == MAX_REPORTED
    assert "25 problems" in str(error) and "... and 15 more" in str(error)
    assert "line 102: caller: 'bad'" in str(error)


def test_binary_and_malformed_files_are_refused():
    with pytest.raises(RulesFileError, match="not UTF-8"):
        parse(b"action,caller\n\xff\xfe\n")
    with pytest.raises(RulesFileError, match="not valid CSV: line 2: field larger than field limit"):
        parse("action,caller\nallow," + "1" * 200_000 + "\n")
    with pytest.raises(RulesFileError, match=r"must end in .csv or .toml"):
        parse("action\n", name="rules.txt")


def test_a_toml_file_is_written_like_the_inline_rules_and_reports_lines():
    rules = parse(TOML, name="office.toml")
    assert [(r.action, r.source) for r in rules] == [("allow", "office.toml:2"), ("deny", "office.toml:6")]
    assert [m.value for m in rules[0].callee] == ["+15612600684", "+4420"]


def test_toml_rules_written_as_an_array_are_numbered_by_position():
    rules = parse('rules = [{ action = "allow", caller = "+1*" }, { action = "deny", caller = "private" }]\n',
                  name="r.toml")
    assert [r.source for r in rules] == ["r.toml rules[0]", "r.toml rules[1]"]


@pytest.mark.parametrize(("text", "message"), [
    ("[[rules]]\naction = 'allow'\ncaller = 'alice'\n", "line 1: caller: 'alice' is not a phone number"),
    ("[[rules]]\naction = 'allow'\n\n[[rules]]\naction = 'maybe'\n", "line 4: action"),
    ("[[rules]]\naction = 'allow'\ncaller = 46701234567\n", "line 1: caller"),
    ("[[rules]]\naction = 'allow'\nnumber = '+1'\n", "line 1: number: Extra inputs are not permitted"),
    ("[[rule]]\naction = 'allow'\n", "rule: Extra inputs are not permitted"),
    ("[[rules]\n", "not valid TOML"),
])
def test_toml_problems_name_the_line(text, message):
    with pytest.raises(RulesFileError) as info:
        parse(text, name="r.toml")
    assert message in str(info.value)


def test_rules_files_may_name_in_app_users():
    rules = parse("action,user,callee\nallow,alice,\ndeny,guest-*,+1900*\n")
    assert [(r.action, [m.value for m in r.user], r.source) for r in rules] == [
        ("allow", ["alice"], "rules.csv:2"), ("deny", ["guest-"], "rules.csv:3")]
    rules = parse('[[rules]]\naction = "allow"\nuser = ["alice", "bob"]\n', name="users.toml")
    assert [m.value for m in rules[0].user] == ["alice", "bob"]
    with pytest.raises(RulesFileError, match="line 2: user: 'al\\*ce'"):
        parse("action,user\nallow,al*ce\n")
