"""The rules file while the plugin runs: changes are picked up, broken versions never are."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest

from callgate_allowlist import Allowlist
from callgate_allowlist.live import LiveRules, read_rules
from callgate_allowlist.rulefile import RulesFileError


class LogRecorder:
    """A structlog-shaped sink that keeps what the plugin logs (event name and fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def _record(self, level):
        return lambda event, **fields: self.lines.append((level, event, fields))

    def __getattr__(self, level):
        return self._record(level)

    def events(self, name: str) -> list[dict]:
        return [fields for _, event, fields in self.lines if event == name]


def write(path, text: str) -> None:
    """Replace the file's content and make sure its modification time moves on (coarse clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def plugin_for(path, *, reload_seconds: float = 0, default: str = "deny") -> tuple[Allowlist, LogRecorder]:
    plugin = Allowlist(Allowlist.Config(default=default, rules_file=path, reload_seconds=reload_seconds))
    recorder = LogRecorder()
    plugin.rules.log = recorder
    return plugin, recorder


def verdict(plugin: Allowlist, ice_event, **call) -> str:
    return type(plugin.authorize_call(ice_event(**call))).__name__


async def test_an_edited_file_replaces_the_rules(tmp_path, ice_event):
    path = tmp_path / "allowed.csv"
    write(path, "action,callee\nallow,+15551234567\n")
    plugin, log = plugin_for(path)
    assert verdict(plugin, ice_event, to="+15551234567") == "Allow"
    assert (await plugin.rules.reload()).status == "unchanged"

    write(path, "action,callee\nallow,+15559999999\n")
    assert (await plugin.rules.reload()).status == "reloaded"
    assert verdict(plugin, ice_event, to="+15551234567") == "Deny"
    assert verdict(plugin, ice_event, to="+15559999999") == "Allow"
    assert log.events("allowlist_rules_loaded")[0]["rules"] == {"deny": 0, "allow": 1}


async def test_a_broken_file_keeps_the_old_rules_and_says_why_once(tmp_path, ice_event):
    path = tmp_path / "allowed.csv"
    write(path, "action,callee\nallow,+15551234567\n")
    plugin, log = plugin_for(path)
    before = plugin.rules.current

    write(path, "action,callee\nallow,+15559999999\nallow,+1555 CALL NOW\n")
    result = await plugin.rules.reload()
    assert result.status == "failed" and "line 3: callee: '+1555 CALL NOW' is not a phone number" in result.error
    assert plugin.rules.current is before                       # not a single rule of the broken file
    assert verdict(plugin, ice_event, to="+15551234567") == "Allow"
    assert verdict(plugin, ice_event, to="+15559999999") == "Deny"
    [failure] = log.events("allowlist_reload_failed")
    assert "line 3" in failure["error"] and failure["kept_rules"] == {"deny": 0, "allow": 1}

    assert (await plugin.rules.reload()).status == "failed"    # the next look: same broken file, not logged again
    assert len(log.events("allowlist_reload_failed")) == 1

    write(path, "action,callee\nallow,+15559999999\n")           # fixed
    assert (await plugin.rules.reload()).status == "reloaded"
    assert verdict(plugin, ice_event, to="+15559999999") == "Allow"
    assert plugin.rules.last_error is None


async def test_a_deleted_file_keeps_the_old_rules(tmp_path, ice_event):
    path = tmp_path / "blocked.toml"
    write(path, '[[rules]]\naction = "deny"\ncaller = "+4670*"\n')
    plugin, log = plugin_for(path, default="allow")
    path.unlink()
    result = await plugin.rules.reload()
    assert result.status == "failed" and "does not exist" in result.error
    assert verdict(plugin, ice_event, caller="46701234567") == "Deny"
    assert (await plugin.rules.reload()).status == "failed"
    assert len(log.events("allowlist_reload_failed")) == 1
    write(path, '[[rules]]\naction = "deny"\ncaller = "+4680*"\n')
    assert (await plugin.rules.reload()).status == "reloaded"
    assert verdict(plugin, ice_event, caller="46701234567") == "Allow"


async def test_a_forced_reload_rereads_and_reports_even_an_unchanged_file(tmp_path):
    path = tmp_path / "allowed.csv"
    write(path, "action,callee\nallow,+15551234567\n")
    plugin, log = plugin_for(path)
    assert (await plugin.rules.reload(force=True, trigger="sighup")).status == "reloaded"
    assert log.events("allowlist_rules_loaded")[-1]["trigger"] == "sighup"


async def test_the_background_look_out_picks_up_changes_until_shutdown(tmp_path, ice_event, eventually):
    path = tmp_path / "allowed.csv"
    write(path, "action,callee\nallow,+15551234567\n")
    plugin, _log = plugin_for(path, reload_seconds=0.05)
    await plugin.startup()
    try:
        write(path, "action,callee\nallow,+15559999999\n")

        async def switched():
            return verdict(plugin, ice_event, to="+15559999999") == "Allow"

        await eventually(switched, what="the edited file in force")
    finally:
        await plugin.shutdown()
    assert plugin.rules._poller is None
    write(path, "action,callee\nallow,+15550000000\n")
    await asyncio.sleep(0.3)
    assert verdict(plugin, ice_event, to="+15559999999") == "Allow"   # stopped: no more reloads


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
async def test_sighup_rereads_the_file_and_the_handler_is_removed_at_shutdown(tmp_path, ice_event, eventually):
    assert threading.current_thread() is threading.main_thread()
    path = tmp_path / "allowed.csv"
    write(path, "action,callee\nallow,+15551234567\n")
    plugin, log = plugin_for(path, reload_seconds=0)            # no polling: only the signal can reload
    await plugin.startup()
    loop = asyncio.get_running_loop()
    try:
        assert plugin.rules._sighup_loop is loop                # the handler is there: SIGHUP will not kill pytest
        write(path, "action,callee\nallow,+15559999999\n")
        os.kill(os.getpid(), signal.SIGHUP)

        async def switched():
            return verdict(plugin, ice_event, to="+15559999999") == "Allow"

        await eventually(switched, what="the file re-read on SIGHUP")
        assert log.events("allowlist_sighup")
    finally:
        await plugin.shutdown()
    assert loop.remove_signal_handler(signal.SIGHUP) is False   # already removed by shutdown


async def test_without_a_file_there_is_nothing_to_watch(ice_event):
    plugin = Allowlist(Allowlist.Config(default="allow", rules=[{"action": "deny", "caller": "private"}]))
    await plugin.startup()
    try:
        assert plugin.rules._poller is None and plugin.rules._sighup_loop is None
        assert (await plugin.rules.reload(force=True)).status == "unchanged"
        assert verdict(plugin, ice_event, caller="private") == "Deny"
    finally:
        await plugin.shutdown()


def test_rules_from_a_file_keep_their_lines_after_the_inline_ones(tmp_path):
    path = tmp_path / "r.csv"
    write(path, "action,caller\ndeny,+1900*\n")
    live = LiveRules([], path)
    assert live.current.counts == {"deny": 1, "allow": 0}
    assert live.current.sources == (str(path),)


class BusyWriterPath(type(Path())):
    """A rules file that a writer appends to while callgate is reading it."""

    def read_bytes(self) -> bytes:
        data = super().read_bytes()
        with open(self, "a") as f:
            f.write("deny,+1900*\n")
        return data


async def test_a_file_that_changes_while_it_is_read_is_not_used_until_it_settles(tmp_path, ice_event):
    path = tmp_path / "blocked.csv"
    write(path, "action,caller\ndeny,+4670*\n")
    plugin, log = plugin_for(path, default="allow")
    write(path, "action,caller\ndeny,+4680*\n")
    plugin.rules.path = BusyWriterPath(path)
    with pytest.raises(RulesFileError, match="changed while it was being read"):
        read_rules((), plugin.rules.path)
    assert (await plugin.rules.reload()).status == "unchanged"       # half-written: not used, not an error
    assert verdict(plugin, ice_event, caller="46701234567") == "Deny" and not log.lines
    plugin.rules.path = path                                          # the writer is done
    assert (await plugin.rules.reload()).status == "reloaded"
    assert verdict(plugin, ice_event, caller="19005550100") == "Deny"   # the line the writer added
    assert verdict(plugin, ice_event, caller="46701234567") == "Allow"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
async def test_an_unreadable_file_keeps_the_old_rules(tmp_path, ice_event):
    path = tmp_path / "allowed.csv"
    write(path, "action,callee\nallow,+15551234567\n")
    plugin, _log = plugin_for(path)
    write(path, "action,callee\nallow,+15559999999\n")
    path.chmod(0)
    try:
        result = await plugin.rules.reload()
    finally:
        path.chmod(0o644)
    assert result.status == "failed" and "cannot be read: Permission denied" in result.error
    assert verdict(plugin, ice_event, to="+15551234567") == "Allow"


async def test_a_directory_in_place_of_the_file_keeps_the_old_rules(tmp_path, ice_event):
    path = tmp_path / "allowed.csv"
    write(path, "action,callee\nallow,+15551234567\n")
    plugin, log = plugin_for(path)
    path.unlink()
    path.mkdir()
    result = await plugin.rules.reload()
    assert result.status == "failed" and "cannot be read" in result.error
    assert verdict(plugin, ice_event, to="+15551234567") == "Allow"
    assert [e["error"] for e in log.events("allowlist_reload_failed")] == [result.error]
