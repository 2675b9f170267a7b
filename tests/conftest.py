import json
from pathlib import Path

import pytest

pytest_plugins = ["callgate.testing"]

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_examples(event: str) -> list[dict]:
    """The composed example bodies (and example answers) for one event."""
    return json.loads((FIXTURES / f"{event}.json").read_text())["examples"]


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
