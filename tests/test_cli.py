"""The `callgate` command: simulate, plugins, check-config, and a plugin installed with pip from outside the repo."""

import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from callgate import samples
from callgate.protocols.v1 import signing
from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

CALLGATE = str(Path(sys.executable).with_name("callgate"))


def run(*args, env=None, cwd=None):
    import os
    return subprocess.run([CALLGATE, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, **(env or {})})


def test_check_config_accepts_the_shipped_file():
    result = run("check-config", "--config", str(Path(__file__).parent.parent / "config.toml"))
    assert result.returncode == 0 and "ok" in result.stdout and "router, caller_id" in result.stdout


def test_check_config_fails_with_the_same_message_as_start_up(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[plugins.router]\nroutes = [{ action = { name = "connectPstn", number = "12" } }]\n')
    result = run("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "plugin 'router'" in result.stderr and "[plugins.router].routes" in result.stderr


def test_plugins_lists_builtins_as_json():
    result = run("plugins", "--json")
    listing = json.loads(result.stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["router"]["builtin"] and by_name["router"]["distribution"] == "callgate"
    assert "route_call" in by_name["router"]["hooks"] and "set_cli" in by_name["caller_id"]["hooks"]


def test_simulate_explains_the_route(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[plugins.router.routes]]\nname = "us"\nprefix = "+1"\n'
                    'action = { name = "connectPstn", number = "{to}" }\n')
    result = run("simulate", "ice", "--from", "+46701234567", "--to", "+14155550123", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "route:    us (from router)" in result.stdout
    assert '"number": "+14155550123"' in result.stdout


PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"
[project]
name = "callgate-blocklist-example"
version = "0.3.0"
dependencies = []
[project.entry-points."callgate.plugins"]
blocklist = "callgate_blocklist_example:Blocklist"
wrapped = "callgate_blocklist_example:Wrapped"
stubborn = "callgate_blocklist_example:Stubborn"
shadow = "callgate_blocklist_example:Shadow"
mimic = "callgate_blocklist_example:Mimic"
"""

PLUGIN_MODULE = '''
import os
from pathlib import Path
from pydantic import BaseModel, ConfigDict
from callgate import Deny, Prompt, hookimpl

if os.environ.get("IMPORT_MARKER"):
    Path(os.environ["IMPORT_MARKER"]).write_text("imported")


class Blocklist:
    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        blocked: list[str] = []

    def __init__(self, config):
        self.config = config

    @hookimpl
    def authorize_call(self, call):
        if call.caller in self.config.blocked:
            return Deny("caller is blocked", prompt=Prompt.say("This number is blocked."))
        return None

    @hookimpl
    def register_commands(self, subparsers):
        parser = subparsers.add_parser("blocklist", help="show the blocked numbers")
        parser.set_defaults(handler=lambda args: print("\\n".join(self.config.blocked)))


class Shadow:
    """A plugin whose command is named like a core command."""

    @hookimpl
    def register_commands(self, subparsers):
        subparsers.add_parser("serve", help="my own serve")


class Mimic:
    """A plugin whose command is named like another plugin's."""

    @hookimpl
    def register_commands(self, subparsers):
        subparsers.add_parser("blocklist", help="not the blocklist")


class Stubborn:
    """A plugin whose startup() or shutdown() never returns, or whose shutdown() raises."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        hang_startup: bool = False
        hang_shutdown: bool = False
        raise_shutdown: bool = False
        leak_cancellation: bool = False

    def __init__(self, config):
        self.config = config

    async def startup(self):
        if self.config.hang_startup:
            import asyncio
            await asyncio.Event().wait()

    async def shutdown(self):
        import asyncio
        if self.config.raise_shutdown:
            raise RuntimeError("cannot close the pool")
        if self.config.leak_cancellation:          # the common task.cancel(); await task
            task = asyncio.ensure_future(asyncio.sleep(10))
            task.cancel()
            await task
        if self.config.hang_shutdown:
            await asyncio.Event().wait()
        # One write of the whole line: the workers share stdout, and print() writes the line and its newline apart
        # (two system calls when unbuffered), so another worker's log line could land between them.
        os.write(1, b'{"event": "stubborn_shut_down"}\\n')


class Wrapped:
    """A pluggy wrapper: callgate does not honour wrappers, so it refuses to load this."""

    @hookimpl(wrapper=True)
    def on_disconnect(self, call):
        result = yield
        return result
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """A plugin written outside the repo, installed with pip into its own target folder."""
    root = tmp_path_factory.mktemp("external")
    src = root / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "callgate_blocklist_example.py").write_text(PLUGIN_MODULE)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(src)],
                   check=True, timeout=300)
    return site


def test_hook_register_commands_and_disabled_plugins_are_not_imported(installed_plugin, tmp_path):
    marker = tmp_path / "marker"
    env = {"PYTHONPATH": str(installed_plugin), "IMPORT_MARKER": str(marker)}
    config = tmp_path / "config.toml"
    config.write_text("")
    listing = json.loads(run("plugins", "--json", "--config", str(config), env=env).stdout)
    entry = next(p for p in listing["plugins"] if p["name"] == "blocklist")
    assert (entry["distribution"], entry["version"], entry["enabled"]) == ("callgate-blocklist-example", "0.3.0", False)
    assert not marker.exists()                  # listed from metadata only
    config.write_text('[plugins]\nenabled = ["blocklist"]\n[plugins.blocklist]\nblocked = ["+46700000001"]\n')
    result = run("blocklist", "--config", str(config), env=env)
    assert result.returncode == 0 and result.stdout.strip() == "+46700000001"
    assert marker.exists()


def test_help_lists_the_enabled_plugins_commands(installed_plugin, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\nenabled = ["blocklist"]\n[plugins.blocklist]\nblocked = []\n')
    listed = run("--help", "--config", str(config), env={"PYTHONPATH": str(installed_plugin)})
    assert listed.returncode == 0 and "blocklist" in listed.stdout and "show the blocked numbers" in listed.stdout
    config.write_text('[plugins]\nenabled = ["blocklist"]\n[plugins.blocklist]\nblockd = []\n')     # broken
    still = run("--help", "--config", str(config), env={"PYTHONPATH": str(installed_plugin)})
    assert still.returncode == 0 and "check-config" in still.stdout and "show the blocked numbers" not in still.stdout


def test_a_plugin_command_named_like_a_taken_one_is_refused_naming_the_plugin(installed_plugin, tmp_path):
    """argparse refuses a second parser of one name with a traceback, which broke every plugin command and the
    help; now the command line, and check-config, name the plugin at fault."""
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\nenabled = ["blocklist", "shadow"]\n[plugins.blocklist]\nblocked = []\n')
    env = {"PYTHONPATH": str(installed_plugin)}
    expected = ("callgate: plugin 'shadow': register_commands added the command 'serve', whose name is taken (one of "
                "callgate's own): name your commands after your plugin")
    for argv in (("blocklist",), ("check-config",)):
        result = run(*argv, "--config", str(config), env=env)
        assert (result.returncode, result.stderr.strip()) == (2, expected), result
        assert "Traceback" not in result.stderr
    listed = run("--help", "--config", str(config), env=env)
    assert listed.returncode == 0 and "check-config" in listed.stdout and "Traceback" not in listed.stderr
    # a name another plugin took first: both are named (the first one may be the one at fault)
    config.write_text('[plugins]\nenabled = ["blocklist", "mimic"]\n[plugins.blocklist]\nblocked = []\n')
    result = run("check-config", "--config", str(config), env=env)
    assert (result.returncode, result.stderr.strip()) == (2, "callgate: plugin 'mimic': register_commands added the "
                                                             "command 'blocklist', whose name is taken (plugin "
                                                             "'blocklist' added it first): name your commands after "
                                                             "your plugin")


def test_simulate_names_the_plugin_that_denied(installed_plugin, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\nenabled = ["blocklist"]\n[plugins.blocklist]\nblocked = ["+46700000001"]\n')
    result = run("simulate", "ice", "--from", "46700000001", "--config", str(config),
                 env={"PYTHONPATH": str(installed_plugin)})
    assert "decision: DENIED by blocklist: caller is blocked" in result.stdout
    assert "This number is blocked." in result.stdout
    # Written before dry runs: simulate says it cannot promise the plugin changed nothing.
    assert "warning: not a dry run for blocklist.authorize_call" in result.stderr


async def test_installed_plugin_changes_the_answer_of_the_real_server(installed_plugin, callgate_server):
    config = '[plugins]\nenabled = ["blocklist"]\n[plugins.blocklist]\nblocked = ["+46700000001"]\n' \
             '[[plugins.router.routes]]\naction = { name = "connectPstn", number = "{to}" }\n'
    server = callgate_server(config, env={"PYTHONPATH": str(installed_plugin)})
    async with aiohttp.ClientSession() as session:
        for caller, action in (("46700000001", "hangup"), ("46700000002", "connectPstn")):
            raw = json.dumps(samples.ice(caller=caller)).encode()
            headers = signing.signed_headers(TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, "/sinch/callback", raw)
            async with session.post(server.url + "/sinch/callback", data=raw, headers=headers) as response:
                assert (await response.json())["action"]["name"] == action


def test_invalid_plugin_config_stops_serve(installed_plugin, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\nenabled = ["blocklist"]\n[plugins.blocklist]\nblockd = []\n')
    result = run("serve", "--config", str(config), env={"PYTHONPATH": str(installed_plugin)})
    assert result.returncode == 2 and "[plugins.blocklist].blockd" in result.stderr


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_plugin_with_a_wrapper_hook_is_refused_at_load(installed_plugin, tmp_path, command):
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\nenabled = ["wrapped"]\n')
    result = run(command, "--config", str(config), env={"PYTHONPATH": str(installed_plugin)})
    assert result.returncode == 2
    assert "plugin 'wrapped'" in result.stderr and "@hookimpl(wrapper=True) for hook on_disconnect" in result.stderr
    assert "there are no wrappers" in result.stderr and "Traceback" not in result.stderr


def test_simulate_json_is_json_on_stdout(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[server]\ndefault_decision = "deny"\n')
    result = run("simulate", "ice", "--json", "--config", str(path))
    answer = json.loads(result.stdout)
    assert answer["status"] == 200 and answer["answer"] == {"action": {"name": "hangup"}}
    assert answer["decision"]["decided_by"] == "default" and answer["decision"]["allowed"] is False
    assert answer["warnings"] == []                  # the built-ins change nothing


def _serve_stubborn(installed_plugin, tmp_path, settings: str) -> subprocess.Popen:
    import os
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nlog_format = "json"\nport = 0\n[plugins]\nenabled = ["stubborn"]\n'
                      f'[plugins.stubborn]\n{settings}\n')
    return subprocess.Popen([CALLGATE, "serve", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(installed_plugin),
                                 "SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY,
                                 "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET})


def _lines_until(process: subprocess.Popen, event: str) -> list[dict]:
    lines = []
    for text in process.stdout:
        assert "Traceback" not in text, text
        lines.append(json.loads(text))
        if lines[-1].get("event") == event:
            return lines
    raise AssertionError(f"no {event} line: {lines}")


def test_a_signal_stops_a_start_up_that_waits_for_a_plugin(installed_plugin, tmp_path):
    import signal
    import time
    process = _serve_stubborn(installed_plugin, tmp_path, "hang_startup = true")
    time.sleep(2.0)                                           # the plugin's startup() is waiting
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    events = {line["event"]: line for line in (json.loads(t) for t in process.stdout.read().splitlines())}
    assert events["plugin_startup_cancelled"]["plugin"] == "stubborn"
    assert "stopped_while_starting" in events and "listening" not in events


@pytest.mark.parametrize("setting, says", [("raise_shutdown = true", "cannot close the pool"),
                                           ("leak_cancellation = true", "CancelledError")])
def test_a_plugin_shutdown_that_fails_is_logged_and_the_server_still_stops_cleanly(installed_plugin, tmp_path,
                                                                                    setting, says):
    """One that raises, or lets out the cancellation of something it awaited (``task.cancel(); await task``)."""
    import signal
    process = _serve_stubborn(installed_plugin, tmp_path, setting)
    _lines_until(process, "listening")
    process.send_signal(signal.SIGTERM)
    lines = _lines_until(process, "stopped")
    assert process.wait(timeout=15) == 0
    [failed] = [line for line in lines if line["event"] == "plugin_shutdown_failed"]
    assert failed["plugin"] == "stubborn" and says in failed["error"]


def test_a_signal_to_the_whole_process_group_stops_every_worker_cleanly(installed_plugin, tmp_path):
    """A terminal's Ctrl-C or systemd's KillMode=control-group signals the supervisor and each worker: a worker
    then gets the signal twice (the group's, and the supervisor's), and must still drain and stop its plugins."""
    import os
    import signal
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nlog_format = "json"\nport = {port}\ndrain_seconds = 1\n'
                      f'[plugins]\nenabled = ["stubborn"]\n[plugins.stubborn]\n')
    process = subprocess.Popen([CALLGATE, "serve", "--workers", "2", "--config", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(installed_plugin),
                                    "SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY,
                                    "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET})
    listening = 0
    for text in process.stdout:
        listening += '"listening"' in text
        if listening == 2:
            break
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    events = [json.loads(text)["event"] for text in process.stdout.read().splitlines() if text.startswith("{")]
    assert events.count("stubborn_shut_down") == 2 and events.count("stopped") >= 2, events
