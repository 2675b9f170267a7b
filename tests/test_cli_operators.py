"""The `callgate` command as operators meet it: the real command in a subprocess, a config file in a
temporary folder, the three shipped plugins enabled (issue 15, items 6, 7, 8 and 13)."""

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, free_port

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

for module in ("callgate_allowlist", "callgate_credit_check", "callgate_crm_export"):
    pytest.importorskip(module, reason=f"{module} is not installed (python3 scripts/dev.py test installs it)")

CALLGATE = str(Path(sys.executable).with_name("callgate"))
CRM_SECRET_ENV = "OPS_TEST_CRM_WEBHOOK_SECRET"
ACCOUNT = "+46701234567"

#: allowlist, credit_check and crm_export, with relative paths (taken from the config file's folder) and the
#: CRM webhook's secret from the environment.
THREE_PLUGINS = f"""
[plugins]
enabled = ["allowlist", "credit_check", "crm_export"]

[plugins.allowlist]
default = "deny"
rules_file = "rules.csv"

[plugins.credit_check]
database_url = "sqlite:///data/credit.sqlite3"

[plugins.crm_export]
database_url = "sqlite:///data/crm.sqlite3"
[[plugins.crm_export.sinks]]
name = "crm"
type = "webhook"
url = "https://crm.example.com/calls"
secret = {{ env = "{CRM_SECRET_ENV}" }}
[[plugins.crm_export.sinks]]
name = "file"
type = "file"
path = "export/calls-{{date}}.jsonl"
"""


def run(*args, env=None, cwd=None, stdin=None):
    """``callgate ARGS`` as an operator runs it: only PATH and what ``env`` adds in the environment."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    return subprocess.run([CALLGATE, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=environ,
                          stdin=stdin)


@pytest.fixture
def site(tmp_path):
    """A config folder /srv/cg-like: config.toml and the rules file beside it; returns the config path."""
    folder = tmp_path / "srv" / "cg"
    folder.mkdir(parents=True)
    (folder / "rules.csv").write_text("action,caller\nallow,+4670*\n")
    config = folder / "config.toml"
    config.write_text(THREE_PLUGINS)
    return config


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


# --- item 6: a command needs only what it uses -----------------------------------------------------

def test_plugin_commands_work_without_another_plugins_secret(site):
    env, here = {CRM_SECRET_ENV: "s" * 32}, site.parent
    ok(run("credit", "add", ACCOUNT, "--currency", "EUR", "--config", str(site), env=env, cwd=here))
    ok(run("credit", "topup", ACCOUNT, "2.50", "--config", str(site), env=env, cwd=here))

    # The CRM webhook's secret is not in the environment: the credit and allowlist commands do not need it.
    balance = json.loads(ok(run("credit", "balance", ACCOUNT, "--json", "--config", str(site), cwd=here)))
    assert balance["balance"] == "2.50"
    check = run("allowlist", "check", ACCOUNT, "+14155550123", "--config", str(site), cwd=here)
    assert check.returncode == 0, check.stderr
    assert "allow" in check.stdout and "rules.csv" in check.stdout

    # crm_export's own commands need crm_export's whole table, its secret included: they say which variable.
    status = run("crm", "status", "--config", str(site), cwd=here)
    assert status.returncode == 2
    assert CRM_SECRET_ENV in status.stderr and "Traceback" not in status.stderr


def test_check_config_and_serve_still_need_every_secret(site):
    env = {"SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY, "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET}
    here = site.parent
    check = run("check-config", "--config", str(site), env=env, cwd=here)
    assert check.returncode == 2 and CRM_SECRET_ENV in check.stderr, check.stderr
    serve = run("serve", "--port", str(free_port()), "--config", str(site), env=env, cwd=here)
    assert serve.returncode == 2 and CRM_SECRET_ENV in serve.stderr, serve.stderr
    assert "Traceback" not in check.stderr + serve.stderr
    ok(run("check-config", "--config", str(site), env={**env, CRM_SECRET_ENV: "s" * 32}, cwd=here))


# --- item 7: relative paths are taken from the config file's folder ------------------------------

def test_commands_run_from_another_folder_use_the_config_files_folder(site, tmp_path):
    env, elsewhere = {CRM_SECRET_ENV: "s" * 32}, tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok(run("credit", "add", ACCOUNT, "--currency", "EUR", "--config", str(site), env=env, cwd=site.parent))
    ok(run("credit", "topup", ACCOUNT, "2.50", "--config", str(site), env=env, cwd=site.parent))
    assert (site.parent / "data" / "credit.sqlite3").is_file()

    balance = json.loads(ok(run("credit", "balance", ACCOUNT, "--json", "--config", str(site), cwd=elsewhere)))
    assert balance["balance"] == "2.50"
    assert "allow" in ok(run("allowlist", "check", ACCOUNT, "+14155550123", "--config", str(site), cwd=elsewhere))
    assert "ok" in ok(run("check-config", "--config", str(site), env=env, cwd=elsewhere))
    assert list(elsewhere.iterdir()) == []                              # nothing was created where it ran
    # A relative --config is a path like any other: its folder is where the paths start.
    ok(run("credit", "balance", ACCOUNT, "--config", os.path.relpath(site, elsewhere), cwd=elsewhere))


def test_file_sink_and_rules_file_paths_are_taken_from_the_config_folder(site, tmp_path, monkeypatch):
    from callgate.config import load_config
    from callgate.manager import load_plugins

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CRM_SECRET_ENV, "s" * 32)
    plugins = {p.name: p.instance for p in load_plugins(load_config(site).plugins).loaded}
    folder = site.parent
    assert plugins["crm_export"].config.sink("file").path == f"{folder}/export/calls-{{date}}.jsonl"
    assert plugins["crm_export"].config.database_url.get_secret_value() == f"sqlite:///{folder}/data/crm.sqlite3"
    assert plugins["credit_check"].config.database_url.get_secret_value() == f"sqlite:///{folder}/data/credit.sqlite3"
    assert plugins["allowlist"].rules.path == folder / "rules.csv"


def test_read_only_commands_refuse_a_database_that_does_not_exist(site, tmp_path):
    env, folder = {CRM_SECRET_ENV: "s" * 32}, site.parent
    for command in (["credit", "balance", ACCOUNT], ["credit", "ledger", ACCOUNT], ["credit", "accounts"],
                    ["credit", "rates", "export"], ["credit", "quote", "+14155550123", "60", "--currency", "EUR"]):
        result = run(*command, "--config", str(site), env=env, cwd=tmp_path)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert f"{folder}/data/credit.sqlite3" in result.stderr and "Traceback" not in result.stderr, result.stderr
    for command in (["crm", "status"], ["crm", "retry"], ["crm", "replay", "--since", "1d"]):
        result = run(*command, "--config", str(site), env=env, cwd=tmp_path)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert f"{folder}/data/crm.sqlite3" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (folder / "data").exists() or list((folder / "data").iterdir()) == []
    assert not (tmp_path / "data").exists()


# --- item 8: a PostgreSQL URL without its driver ---------------------------------------------------

@pytest.fixture
def without_asyncpg(tmp_path):
    """An environment in which ``import asyncpg`` fails as it does when the package is not installed."""
    stub = tmp_path / "no-asyncpg" / "asyncpg"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("No module named \'asyncpg\'")\n')
    return {"PYTHONPATH": str(stub.parent), "SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY,
            "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET}


@pytest.mark.parametrize("plugin, table", [
    ("credit_check", 'database_url = "postgresql://callgate@127.0.0.1:1/credit"\n'),
    ("crm_export", 'database_url = "postgresql://callgate@127.0.0.1:1/crm"\n'
                   '[[plugins.crm_export.sinks]]\nname = "file"\ntype = "file"\npath = "calls.jsonl"\n'),
])
def test_a_postgresql_url_without_asyncpg_fails_at_once_and_says_what_to_install(plugin, table, tmp_path,
                                                                                 without_asyncpg):
    config = tmp_path / "config.toml"
    config.write_text(f'[plugins]\nenabled = ["{plugin}"]\n[plugins.{plugin}]\n{table}')
    install = f"pip install 'callgate-{plugin.replace('_', '-')}[postgres]'"
    for command in (["check-config"], ["serve", "--port", str(free_port())]):
        result = run(*command, "--config", str(config), env=without_asyncpg, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "asyncpg" in result.stderr and install in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# --- item 13: output piped into head, a port already in use ---------------------------------------

APP_ENV = {"SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY, "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET}


def piped_into_head(command: str, *, cwd, env=None):
    """``callgate ... | head -c 100`` in a shell: head exits after 100 bytes, callgate writes far more."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    return subprocess.run(f"{CALLGATE} {command} | head -c 100", shell=True, capture_output=True, cwd=cwd,
                          env=environ, timeout=60)


def test_output_piped_into_head_ends_quietly(tmp_path):
    (tmp_path / "big.json").write_text(json.dumps({"event": "ice", "padding": "x" * 1_000_000}))
    result = piped_into_head("sign ice --body big.json", cwd=tmp_path, env=APP_ENV)
    assert len(result.stdout) == 100 and result.stdout.startswith(b"curl")
    assert result.stderr == b"", result.stderr.decode()


def test_plugin_output_piped_into_head_ends_quietly(tmp_path):
    (tmp_path / "config.toml").write_text('[plugins]\nenabled = ["credit_check"]\n'
                                          '[plugins.credit_check]\ndatabase_url = "sqlite:///credit.sqlite3"\n')
    rows = "".join(f"+1{i},USD,0.01\n" for i in range(1000, 6000))
    (tmp_path / "rates.csv").write_text("prefix,currency,per_minute\n" + rows)
    ok(run("credit", "rates", "import", "rates.csv", cwd=tmp_path))
    result = piped_into_head("credit rates export", cwd=tmp_path)
    assert len(result.stdout) == 100 and result.stdout.startswith(b"prefix,")
    assert result.stderr == b"", result.stderr.decode()


@pytest.fixture
def busy_port():
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_one_line_naming_the_address_and_the_setting(tmp_path, busy_port):
    (tmp_path / "config.toml").write_text("[server]\nlog_format = \"json\"\n")
    result = run("serve", "--port", str(busy_port), cwd=tmp_path, env=APP_ENV)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    message = [line for line in result.stderr.splitlines() if line.startswith("callgate:")]
    assert len(message) == 1, result.stderr
    assert f"127.0.0.1:{busy_port}" in message[0] and "[server] port" in message[0] and "--port" in message[0]

    (tmp_path / "config.toml").write_text(f"[server]\nlog_format = \"json\"\nops_port = {busy_port}\n")
    result = run("serve", "--port", str(free_port()), cwd=tmp_path, env=APP_ENV)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    message = [line for line in result.stderr.splitlines() if line.startswith("callgate:")]
    assert len(message) == 1 and f"127.0.0.1:{busy_port}" in message[0] and "[server] ops_port" in message[0], \
        result.stderr


def refused(result, *says: str) -> str:
    """The one ``callgate:`` line of a command that exited 2 without a traceback, holding each of ``says``."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    [message] = [line for line in result.stderr.splitlines() if line.startswith("callgate:")]
    for text in says:
        assert text in message, message
    return message


def test_bad_files_and_options_are_one_line_and_exit_2_never_a_traceback(tmp_path):
    (tmp_path / "latin1.toml").write_bytes(b'[server]\nno_route_prompt = "caf\xe9"\n')
    refused(run("check-config", "--config", "latin1.toml", cwd=tmp_path), "latin1.toml", "not UTF-8")
    refused(run("check-config", "--config", str(tmp_path)), "a folder, not a file")
    refused(run("sign", "ice", "--body", "missing.json", cwd=tmp_path, env=APP_ENV), "--body missing.json",
            "No such file")
    refused(run("simulate", "ice", "--body", "missing.json", cwd=tmp_path), "--body missing.json")
    (tmp_path / "cut.json").write_text('{"event":')
    refused(run("simulate", "ice", "--body", "cut.json", cwd=tmp_path), "--body cut.json", "400 invalid_json",
            "not JSON")
    for port in ("99999", "-1", "http"):
        result = run("serve", "--port", port, cwd=tmp_path, env=APP_ENV)
        assert result.returncode == 2 and "Traceback" not in result.stderr and "--port" in result.stderr
    for workers in ("0", "-2"):
        result = run("serve", "--workers", workers, cwd=tmp_path, env=APP_ENV)
        assert result.returncode == 2 and "Traceback" not in result.stderr and "--workers" in result.stderr
    for duration in ("99999999999", "-5"):          # a time no call lasted (the first one was a traceback)
        for command in ("sign", "simulate"):
            result = run(command, "call.hangup", "--duration", duration, cwd=tmp_path, env=APP_ENV)
            assert result.returncode == 2 and "Traceback" not in result.stderr
            assert "--duration" in result.stderr and "give 0 to 86400 seconds" in result.stderr
    refused(run("serve", "--host", "no-such-host.invalid", "--port", str(free_port()), cwd=tmp_path, env=APP_ENV),
            "no-such-host.invalid", "[server] port or host")


@pytest.mark.parametrize("server, says", [("port = true", "[server].port"),
                                          ("port = 18080\nops_port = 18080", "must differ from port")])
def test_check_config_refuses_ports_serve_could_not_use(tmp_path, server, says):
    (tmp_path / "config.toml").write_text(f"[server]\n{server}\n")
    refused(run("check-config", cwd=tmp_path), says)


def test_one_half_of_a_credential_in_the_environment_is_refused_naming_the_other(tmp_path):
    refused(run("check-config", cwd=tmp_path, env={"SINCH_APPLICATION_KEY": "k"}),
            "SINCH_APPLICATION_KEY is set but SINCH_APPLICATION_SECRET is not")
    refused(run("check-config", cwd=tmp_path, env={"SINCH_SERVICE_SECRET": "c2VjcmV0"}),
            "SINCH_SERVICE_SECRET is set but SINCH_SERVICE_ID is not")
    assert "1 application(s)" in ok(run("check-config", cwd=tmp_path, env=APP_ENV))


def test_serve_on_port_0_logs_the_port_it_listens_on(tmp_path):
    (tmp_path / "config.toml").write_text('[server]\nlog_format = "json"\nport = 0\n')
    process = subprocess.Popen([CALLGATE, "serve"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **APP_ENV}, text=True)
    try:
        line = next(json.loads(text) for text in process.stdout if '"listening"' in text)
    finally:
        process.terminate()
        process.wait(timeout=20)
    port = int(line["url"].split(":")[2].split("/")[0])
    assert port != 0 and line["url"] == f"http://127.0.0.1:{port}/sinch/callback"


def test_sign_signs_what_sinch_signs_behind_a_rewriting_proxy_and_names_the_signing_application(tmp_path):
    """With ``public_path``, Sinch signs the public path and the proxy sends the request on to callgate's own path:
    the command sign prints does the same, and its body names the application that signs it."""
    port = free_port()
    (tmp_path / "config.toml").write_text(f'[server]\nlog_format = "json"\nport = {port}\n'
                                          f'public_path = "/voice/sinch"\npublic_webhook_path = "/voice/v2"\n')
    env = {**APP_ENV, "SINCH_SERVICE_ID": "svc-1", "SINCH_SERVICE_SECRET": TEST_APPLICATION_SECRET}
    server = subprocess.Popen([CALLGATE, "serve"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}, text=True)
    try:
        next(text for text in server.stdout if '"listening"' in text)
        for event in ("ice", "call.incoming"):
            command = ok(run("sign", event, cwd=tmp_path, env=env))
            assert f"http://127.0.0.1:{port}/sinch/" in command
            answer = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
            assert answer.returncode == 0 and '"error"' not in answer.stdout, answer.stdout
        body = json.loads(shlex.split(ok(run("sign", "ice", cwd=tmp_path, env=env)))[-1])
        assert body["applicationKey"] == TEST_APPLICATION_KEY
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_sign_body_is_signed_by_the_application_it_names(tmp_path):
    """``sign --body`` signs as Sinch would: with the secret of the application the body's ``applicationKey`` names,
    when it is configured; one that is not configured is signed by the first application, and a note says so."""
    from callgate.protocols.v1.signing import authorization

    second = "c2Vjb25kIGFwcGxpY2F0aW9uJ3Mgc2VjcmV0"
    (tmp_path / "config.toml").write_text('[[applications]]\nkey = "app-a"\nsecrets = [{ env = "A_SECRET" }]\n'
                                          '[[applications]]\nkey = "app-b"\nsecrets = [{ env = "B_SECRET" }]\n')
    env = {"A_SECRET": TEST_APPLICATION_SECRET, "B_SECRET": second}
    # " APP-B " is app-b as the server matches a body's id to its signer (signer_mismatch): signed by app-b too
    for named, key, secret in (("app-b", "app-b", second), (" APP-B ", "app-b", second),
                               ("app-x", "app-a", TEST_APPLICATION_SECRET)):
        body = json.dumps({"event": "ace", "callid": "c-1", "applicationKey": named, "version": 1}).encode()
        (tmp_path / "body.json").write_bytes(body)
        result = run("sign", "ace", "--body", "body.json", cwd=tmp_path, env=env)
        words = shlex.split(ok(result))
        headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
        assert headers["Authorization"] == authorization(key, secret, "POST", "/sinch/callback", body,
                                                         headers["Content-Type"], headers["x-timestamp"])
        assert ("is not configured: signed by 'app-a'" in result.stderr) == (named == "app-x")


def test_sign_body_of_a_v2_webhook_is_signed_by_the_service_it_names(tmp_path):
    """The same for a v2 body: its ``call.serviceId`` picks which of ``[[services]]`` signs it (the Sinch SDK judges)."""
    from sinch.core.internal.sinch_events.authorization_helpers import validate_authentication_header

    from callgate import v2_samples

    second = "c2Vjb25kIHNlcnZpY2UncyBzZWNyZXQ="
    (tmp_path / "config.toml").write_text('[[services]]\nid = "svc-a"\nsecrets = [{ env = "A_SECRET" }]\n'
                                          '[[services]]\nid = "svc-b"\nsecrets = [{ env = "B_SECRET" }]\n')
    env = {"A_SECRET": TEST_APPLICATION_SECRET, "B_SECRET": second}
    for named, service, secret in (("svc-b", "svc-b", second), ("svc-x", "svc-a", TEST_APPLICATION_SECRET)):
        body = json.dumps(v2_samples.hangup(service_id=named)).encode()
        (tmp_path / "body.json").write_bytes(body)
        result = run("sign", "call.hangup", "--body", "body.json", cwd=tmp_path, env=env)
        words = shlex.split(ok(result))
        headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
        assert headers["Authorization"].startswith(f"service {service}:")
        assert validate_authentication_header(key=service, secret=secret, headers=headers, body=body,
                                              path="/sinch/webhook", method="POST")
        assert ("call.serviceId 'svc-x', which is not configured: signed by 'svc-a'" in result.stderr) == \
            (named == "svc-x")


def test_a_body_naming_another_event_than_the_command_gets_a_note(tmp_path):
    """``simulate dice --body ice.json`` simulates the ICE the body is: a note says the EVENT argument is not it."""
    (tmp_path / "ice.json").write_text(json.dumps({"event": "ice", "callid": "c-1", "cli": "46701234567", "to": {
        "type": "number", "endpoint": "+46850001234"}, "domain": "pstn", "originationType": "pstn"}))
    other = run("simulate", "dice", "--body", "ice.json", cwd=tmp_path, env=APP_ENV)
    assert "ICE c-1" in ok(other)
    assert "callgate: note: --body names the event 'ice', not dice: the body is used as it is" in other.stderr
    same = run("simulate", "ice", "--body", "ice.json", cwd=tmp_path, env=APP_ENV)
    assert "ICE c-1" in ok(same) and "note" not in same.stderr


def test_a_command_of_an_installed_plugin_that_is_not_enabled_says_so(tmp_path):
    (tmp_path / "config.toml").write_text('[plugins]\nenabled = ["allowlist"]\n[plugins.allowlist]\ndefault = "allow"\n')
    message = refused(run("credit", "balance", ACCOUNT, cwd=tmp_path), "'credit' is not a command of callgate or "
                      "of an enabled plugin", "installed but not enabled in [plugins] enabled")
    assert "credit_check" in message and "allowlist" not in message.split("enabled (")[-1]


@pytest.mark.parametrize("event, field, expected", [(["call.busy"], "callDurationSeconds", 0),
                                                    (["call.hangup"], "callDurationSeconds", 60),
                                                    (["dice", "--result", "BUSY"], "duration", 0),
                                                    (["dice"], "duration", 60),
                                                    (["dice", "--result", "BUSY", "--duration", "5"], "duration", 5)])
def test_sign_samples_last_as_long_as_their_result_says(tmp_path, event, field, expected):
    env = {**APP_ENV, "SINCH_SERVICE_ID": "svc-1", "SINCH_SERVICE_SECRET": TEST_APPLICATION_SECRET}
    body = json.loads(shlex.split(ok(run("sign", *event, cwd=tmp_path, env=env)))[-1])
    assert (body.get("call") or body)[field] == expected              # a busy call was never talked on


def test_a_list_in_plugins_that_is_not_enabled_is_an_unknown_key_not_a_plugin(tmp_path):
    (tmp_path / "config.toml").write_text('[plugins]\nenable = ["allowlist"]\n')
    refused(run("check-config", cwd=tmp_path), "[plugins].enable: unknown key", "`enabled` (the list of plugins)")


def test_plugins_lists_the_hooks_of_the_plugins_that_load_beside_one_that_does_not(tmp_path):
    (tmp_path / "config.toml").write_text('[plugins]\nenabled = ["allowlist", "credit_check"]\n'
                                          '[plugins.allowlist]\ndefault = "allow"\n'
                                          '[plugins.credit_check]\ncolour = "blue"\n')
    result = run("plugins", cwd=tmp_path)
    assert result.returncode == 0 and "[plugins.credit_check].colour" in result.stderr
    line = next(text for text in result.stdout.splitlines() if text.startswith("allowlist "))
    assert "hooks: authorize_call" in line
