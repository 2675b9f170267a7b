"""``callgate allowlist check`` and ``callgate allowlist validate``, through the real ``callgate`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.cli import main

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

CONFIG = """
[plugins]
enabled = ["allowlist"]

[plugins.allowlist]
default = "deny"
rules_file = {rules_file}
prompt = "Sorry, this call is not allowed."
scope = {{ callee_types = ["number", "did"] }}

[[plugins.allowlist.rules]]
action = "allow"
callee = "+15612600684"
name = "my phone"
"""

RULES_CSV = """action,caller,callee
deny,+4670*,
allow,,+1555*
"""


@pytest.fixture
def config_path(tmp_path) -> Path:
    rules = tmp_path / "rules.csv"
    rules.write_text(RULES_CSV)
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(rules_file=json.dumps(str(rules))))
    return path


def run(capsys, config_path, *args) -> tuple[int, str, str]:
    status = main(["--config", str(config_path), "allowlist", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_check_names_the_deciding_rule_from_the_file_and_its_line(capsys, config_path):
    status, out, _ = run(capsys, config_path, "check", "+46701234567", "+15551234567")
    assert status == 1
    assert "call:     +46701234567 -> +15551234567 (number, pstn, origination pstn)" in out
    assert "rule:     deny caller=+4670*\n" in out and "source:   rules.csv:2\n" in out
    assert "verdict:  deny (the caller hears the prompt, then the call is hung up)" in out
    assert "rules:    1 deny, 2 allow, from [plugins.allowlist] rules and " in out


def test_check_with_an_allow_rule_the_default_and_a_call_outside_the_scope(capsys, config_path):
    status, out, _ = run(capsys, config_path, "check", "44 20 7123 4567", "15551234567")
    assert status == 0 and "rule:     allow callee=+1555*" in out and "source:   rules.csv:3" in out
    status, out, _ = run(capsys, config_path, "check", "+44 20 7123 4567", "+15612600684")
    assert status == 0 and "allow callee=+15612600684 name='my phone'" in out
    assert "source:   [plugins.allowlist] rules[0]" in out
    status, out, _ = run(capsys, config_path, "check", "private", "+442071234567")
    assert status == 1 and "none matches; default = deny" in out and "verdict:  deny by default (the caller" in out
    status, out, _ = run(capsys, config_path, "check", "46701234567", "alice", "--to-type", "username")
    assert status == 3 and "no opinion: outside the scope" in out and "callee_types=['number', 'did']" in out


def test_check_json_says_the_same_as_the_hook(capsys, config_path, ice_event):
    status, out, _ = run(capsys, config_path, "check", "46701234567", "+15551234567", "--json")
    result = json.loads(out)
    assert status == 1
    assert result["verdict"] == "deny" and result["rule"] == {"rule": "deny caller=+4670*", "source": "rules.csv:2"}
    assert result["call"]["caller"] == "+46701234567" and result["rules"] == {"deny": 1, "allow": 2}

    from callgate.config import load_config
    from callgate.manager import load_plugins
    plugins = load_plugins(load_config(str(config_path)).plugins)
    hook = plugins.loaded[0].instance.authorize_call(ice_event(caller="46701234567", to="+15551234567"))
    assert hook.reason == "rule deny caller=+4670* (rules.csv:2)" and result["reason"] == hook.reason


def test_validate_checks_a_file_before_it_is_put_in_place(capsys, config_path, tmp_path):
    status, out, _ = run(capsys, config_path, "validate")
    assert status == 0 and out.endswith("rules.csv: ok, 2 rules (1 deny, 1 allow)\n")
    candidate = tmp_path / "next.csv"
    candidate.write_text("action,caller\ndeny,+1900*\ndeny,premium\n")
    status, out, err = run(capsys, config_path, "validate", str(candidate))
    assert status == 1 and "next.csv: 1 problem, file not loaded" in err and "line 3: caller: 'premium'" in err
    candidate.write_text("action,caller\ndeny,+1900*\n")
    assert run(capsys, config_path, "validate", str(candidate))[0] == 0


def test_the_real_command_prints_the_explanation(config_path):
    callgate = str(Path(sys.executable).with_name("callgate"))
    command = [callgate, "allowlist", "check", "+46701234567", "+15551234567", "--config", str(config_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "source:   rules.csv:2" in done.stdout and "verdict:  deny" in done.stdout


def test_check_an_in_app_caller_by_user(capsys, tmp_path):
    path = tmp_path / "users.toml"
    path.write_text('[plugins]\nenabled = ["allowlist"]\n[plugins.allowlist]\ndefault = "deny"\n'
                    '[[plugins.allowlist.rules]]\naction = "allow"\nuser = "alice"\n')
    status, out, _ = run(capsys, path, "check", "private", "+14155550123", "--user", "alice", "--origination", "mxp")
    assert status == 0 and "rule:     allow user=alice" in out
    assert "call:     private -> +14155550123 (number, pstn, origination mxp, user alice)" in out
    status, out, _ = run(capsys, path, "check", "private", "+14155550123", "--user", "bob", "--json")
    assert status == 1 and json.loads(out)["call"]["user"] == "bob"
