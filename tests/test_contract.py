"""Meta-tests: every hook is documented in its spec and in the plugin author's guide, and has a test."""

import inspect
import re
import types
import typing
from pathlib import Path

import pytest

from callgate import dispatch, hookspecs
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


def _spec(hook):
    return getattr(hookspecs, hook)


def _returns(hook):
    """The types a hook's spec says it returns, None left out, as the classes the dispatcher checks."""
    from callgate import calls, decisions, results
    from callgate.protocols.v1 import svaml
    from callgate.protocols.v2 import wire

    hints = typing.get_type_hints(_spec(hook), localns={**vars(calls), **vars(decisions), **vars(results),
                                                         **vars(svaml), "V2Answer": wire.V2Answer})
    returned = hints["return"]
    members = typing.get_args(returned) if isinstance(returned, types.UnionType) else (returned,)
    return {typing.get_origin(t) or t for t in members if t is not type(None)}


def _svaml_types():
    from callgate.protocols.v1.svaml import Svaml
    from callgate.protocols.v2.wire import V2Answer
    return (Svaml, V2Answer)


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_dispatcher_checks_exactly_what_the_hookspec_says_a_decision_hook_returns(hook):
    """dispatch.EXPECTED and dispatch.SVAML_HOOKS (what a decision hook may answer: neutral decisions, and the
    generations' own SVAML) cannot drift from the hookspec's return annotation."""
    takes_a_call = "call" in inspect.signature(_spec(hook)).parameters
    decides = takes_a_call and bool(_returns(hook))
    assert (hook in dispatch.DECISION_HOOKS) == decides, \
        f"{hook}: a hook that takes a call and returns an answer is a decision hook (its on_error applies)"
    if decides:
        svaml = set(_svaml_types()) if hook in dispatch.SVAML_HOOKS else set()
        assert set(dispatch.EXPECTED[hook]) | svaml == _returns(hook)


def test_the_dispatcher_names_and_recognises_every_generations_svaml():
    """The SVAML types the dispatcher names are the adapters' own, and each says its generation (how the core
    recognises a plugin's SVAML without importing it)."""
    from callgate.decisions import EndCall, Route
    from callgate.plan import svaml_generation
    from callgate.protocols.v1.svaml import Hangup, Svaml
    from callgate.protocols.v2.wire import V2Answer

    assert dispatch.SVAML_NAMES == tuple(t.__name__ for t in _svaml_types())
    assert [svaml_generation(Svaml(action=Hangup())), svaml_generation(V2Answer(commands=[]))] == ["v1", "v2"]
    assert svaml_generation(Route(EndCall())) is None and svaml_generation({"commands": []}) is None


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_guide_heading_is_the_hookspec_signature(hook):
    """Each ``### `hook(...) -> ...``` heading in docs/plugins.md is the spec's signature, word for word."""
    spec = _spec(hook)
    params = ", ".join(f"{name}: {p.annotation}" for name, p in inspect.signature(spec).parameters.items())
    returns = spec.__annotations__["return"]
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert f"### `{hook}({params}) -> {returns}`" in guide, \
        f"docs/plugins.md: write the heading as ### `{hook}({params}) -> {returns}`"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_guide_says_first_answer_wins_exactly_for_firstresult_hooks(hook):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide.split(f"### `{hook}(", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    says_first = bool(re.search(r"first\s+non-`None`\s+(answer\s+)?wins", section, re.I))
    assert says_first == _spec(hook).callgate_spec["firstresult"], \
        f"docs/plugins.md {hook}: say 'first non-`None` wins' exactly when the hookspec is firstresult=True"
