"""Meta-tests: every hook is documented in its spec and in the plugin author's guide, and has a test."""

import inspect
import re
from pathlib import Path

import pytest

from callgate import hookspecs
from callgate.manager import HOOK_NAMES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hookspec_docstring_says_what_every_return_means(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc) > 200, f"{hook}: the spec's docstring is the contract; write it"
    assert ":returns:" in doc, f"{hook}: say what the return value means"
    assert "None" in doc, f"{hook}: say what None means"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_in_the_plugin_authors_guide(hook):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert re.search(rf"^### `{hook}\(", guide, re.M), f"docs/plugins.md has no '### `{hook}(...)`' section"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_has_a_test(hook):
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}(_\w*)?\(", tests), f"no test named test_hook_{hook}..."
