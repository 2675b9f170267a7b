"""Sinch's composed example bodies (tests/fixtures), for the core's tests."""

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_examples(event: str) -> list[dict]:
    """The example bodies (and example answers) for one event."""
    return json.loads((FIXTURES / f"{event}.json").read_text())["examples"]
