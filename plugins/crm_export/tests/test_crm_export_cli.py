"""``callgate crm status | retry | replay``: the real command, in its own process, on a real outbox."""

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from callgate.protocols.v1.decode import decode_event
from callgate.samples import dice
from callgate_crm_export.cli import parse_moment
from callgate_crm_export.facts import dice_facts
from callgate_crm_export.outbox import Outbox
from callgate_crm_export.retry import AttemptResult

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

CALLGATE = str(Path(sys.executable).with_name("callgate"))
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=timezone.utc).timestamp()
CONFIG = """
[plugins]
enabled = ["crm_export"]

[plugins.crm_export]
database_url = "{database}"

[[plugins.crm_export.sinks]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret = {{ env = "CRM_TEST_WEBHOOK_SECRET" }}

[[plugins.crm_export.sinks]]
name = "archive"
type = "file"
path = "{archive}"
"""


def callgate(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRM_TEST_WEBHOOK_SECRET": "a-secret-of-enough-length"}
    return subprocess.run([CALLGATE, "--config", str(config), "crm", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
async def setup(tmp_path):
    """Three calls on different days: c1 delivered everywhere, c2 dead at the webhook, c3 pending."""
    database = f"sqlite:///{tmp_path}/crm.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(database=database, archive=tmp_path / "calls.jsonl"))
    outbox = await Outbox.open(database, ("hook", "archive"))
    for i, day in enumerate(("01", "02", "03"), start=1):
        body = dice(callid=f"c{i}", timestamp=f"2025-03-{day}T10:00:00Z")
        await outbox.add_facts(f"c{i}", dice_facts(decode_event(json.dumps(body)), datetime.now(timezone.utc)), NOW)
    for sink in ("hook", "archive"):
        for claim in await outbox.claim(sink, 10, "test", 30, NOW):
            if claim.callid == "c1":
                await outbox.mark_delivered(claim, "test", AttemptResult.delivered(200), NOW)
            elif claim.callid == "c2" and sink == "hook":
                await outbox.mark_failed(claim, "test", AttemptResult("permanent", 400, "HTTP 400: bad"), NOW, 20, NOW)
            else:
                await outbox.release("test", [claim.callid])
    yield config, outbox
    await outbox.close()


async def run(config, *args):
    return await asyncio.to_thread(callgate, config, *args)


async def test_status_shows_depth_oldest_and_dead_letters(setup):
    config, _ = setup
    result = await run(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    sinks = {s["sink"]: s for s in json.loads(result.stdout)["sinks"]}
    assert (sinks["hook"]["pending"], sinks["hook"]["dead"], sinks["hook"]["delivered"]) == (1, 1, 1)
    assert sinks["hook"]["last_dead_letter"] == {"callid": "c2", "error": "HTTP 400: bad"}
    assert (sinks["archive"]["pending"], sinks["archive"]["dead"], sinks["archive"]["delivered"]) == (2, 0, 1)
    assert sinks["archive"]["oldest_pending"] == "2025-03-14T12:00:00Z" and sinks["archive"]["type"] == "file"
    table = await run(config, "status")
    assert "hook" in table.stdout and "last dead letter: c2: HTTP 400: bad" in table.stdout


async def test_retry_moves_dead_letters_back(setup):
    config, outbox = setup
    result = await run(config, "retry", "--sink", "hook")
    assert result.returncode == 0 and result.stdout.startswith("1 dead letter(s) moved back to pending")
    row = (await outbox.deliveries("c2"))["hook"]
    assert (row["state"], row["attempts"]) == ("pending", 0)
    assert (await run(config, "retry")).stdout.startswith("0 dead letter(s)")


async def test_replay_requeues_without_deleting(setup):
    config, outbox = setup
    dry = await run(config, "replay", "--since", "2025-03-02", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("2 record(s)")
    assert (await outbox.deliveries("c2"))["hook"]["state"] == "dead"            # a dry run changes nothing
    result = await run(config, "replay", "--since", "2025-03-01", "--until", "2025-03-02", "--sink", "hook")
    assert result.returncode == 0 and result.stdout.startswith("1 delivery(ies)"), result.stdout
    rows = await outbox.deliveries("c1")
    assert (rows["hook"]["state"], rows["archive"]["state"]) == ("pending", "delivered")
    assert await outbox.record("c1") is not None


async def test_bad_arguments_are_clear_errors(setup):
    config, _ = setup
    result = await run(config, "replay", "--since", "last tuesday")
    assert result.returncode == 2 and "is not a time: use e.g. 2h, 7d" in result.stderr
    result = await run(config, "retry", "--sink", "nope")
    assert result.returncode == 2 and "unknown sink 'nope' (configured sinks: hook, archive)" in result.stdout
    assert (await run(config)).returncode == 2


def test_parse_moment():
    now = 1_000_000.0
    assert parse_moment("2h", now) == now - 7200 and parse_moment("7d", now) == now - 7 * 86400
    assert parse_moment("30m", now) == now - 1800 and parse_moment("1.5h", now) == now - 5400
    assert parse_moment("2025-03-14", now) == datetime(2025, 3, 14, tzinfo=timezone.utc).timestamp()
    assert parse_moment("2025-03-14T09:00:00+01:00", now) == datetime(2025, 3, 14, 8, tzinfo=timezone.utc).timestamp()
    with pytest.raises(ValueError):
        parse_moment("soon", now)


async def test_an_unreachable_outbox_is_a_clear_error_without_the_password(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_TEST_DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:1/none")  # a password: env only
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace('"{database}"', '{{ env = "CRM_TEST_DATABASE_URL" }}').format(
        archive=tmp_path / "calls.jsonl"))
    result = await run(config, "status")
    assert result.returncode == 1 and "cannot open the outbox" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout and "Traceback" not in result.stderr
