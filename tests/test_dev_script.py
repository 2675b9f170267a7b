"""``scripts/dev.py serve``, the README's first command, as a user runs and stops it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from callgate.testing import TEST_APPLICATION_KEY, TEST_APPLICATION_SECRET, free_port

#: Starts the real command and waits for it in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

DEV = Path(__file__).resolve().parent.parent / "scripts" / "dev.py"


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stopping_dev_serve_by_its_pid_stops_the_server_and_frees_the_port(tmp_path, stop):
    """``python3 scripts/dev.py serve &`` then ``kill $!``: the server itself gets the signal (the script's process
    becomes the server's), stops, and leaves the port free for the next start; it used to keep running, orphaned."""
    port = free_port()
    (tmp_path / "config.toml").write_text(f'[server]\nport = {port}\nlog_format = "json"\n')
    env = {**os.environ, "SINCH_APPLICATION_KEY": TEST_APPLICATION_KEY,
           "SINCH_APPLICATION_SECRET": TEST_APPLICATION_SECRET}
    process = subprocess.Popen([sys.executable, str(DEV), "serve", "--config", str(tmp_path / "config.toml")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert process.poll() is None, "dev.py serve exited before answering"
            assert time.monotonic() < deadline, "dev.py serve never answered /healthz"
            time.sleep(0.2)
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while _listening(port):
            assert time.monotonic() < deadline, "something still listens on the port after dev.py serve stopped"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
