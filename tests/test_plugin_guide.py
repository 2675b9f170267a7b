"""docs/plugins.md, followed as a plugin author would: its package files, written out as the guide shows
them, installed with pip outside the repository, and their tests run with pytest, warnings as errors."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

#: Starts the real callgate command or waits in real time: skipped by -m 'not slow'.
pytestmark = pytest.mark.slow

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def guide_files() -> dict[str, str]:
    """The files of the guide's example package: each code block whose first line is ``# <path>`` of a
    file in the package listing."""
    guide = GUIDE.read_text()
    listing = re.search(r"```\n(callgate-blocklist/\n.*?)```", guide, re.S).group(1).split()[1:]
    files = {}
    for body in re.findall(r"```\w*\n(.*?)```", guide, re.S):
        first = body.split("\n", 1)[0]
        if first.startswith("# ") and first[2:].strip() in listing:
            files[first[2:].strip()] = body
    assert sorted(files) == sorted(listing), "every file of the package is shown in the guide"
    return files


def test_the_guides_example_plugin_installs_and_its_tests_pass(tmp_path):
    package = tmp_path / "callgate-blocklist"
    for path, text in guide_files().items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(text)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(package)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
                            cwd=package, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b4 passed\b", result.stdout) and "warning" not in result.stdout.lower(), result.stdout
