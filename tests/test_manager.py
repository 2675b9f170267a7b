"""Discovery and enabling: entry points, only enabled plugins imported, config validated, clear errors."""

import sys
import textwrap

import pytest
from plugins_for_tests import AllowWith, Recorder
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from callgate import Deny, hookimpl
from callgate.config import PluginsConfig, config_from_dict
from callgate.manager import HOOK_NAMES, PluginError, installed_plugins, load_plugins


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """A fake installed distribution with three plugins: one that works, one that fails to import, one disabled."""
    dist = tmp_path / "callgate_fake-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: callgate-fake\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [callgate.plugins]
        fake = callgate_fake_ok:Fake
        broken = callgate_fake_broken:Fake
        idle = callgate_fake_idle:Fake
    """))
    (tmp_path / "callgate_fake_ok.py").write_text(textwrap.dedent("""
        from pydantic import BaseModel, SecretStr
        from callgate import Deny, hookimpl

        class Fake:
            class Config(BaseModel, extra="forbid"):
                reason: str = "fake says no"
                token: SecretStr | None = None
            def __init__(self, config):
                self.config = config
                self.events = []
            async def startup(self):
                self.events.append("startup")
            async def shutdown(self):
                self.events.append("shutdown")
            @hookimpl
            def authorize_call(self, call):
                return Deny(self.config.reason)
    """))
    (tmp_path / "callgate_fake_broken.py").write_text("import no_such_module_anywhere\n")
    (tmp_path / "callgate_fake_idle.py").write_text("raise SystemExit('a disabled plugin was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("callgate_fake_ok", "callgate_fake_broken", "callgate_fake_idle"):
        sys.modules.pop(name, None)


def load(enabled, **tables):
    return load_plugins(PluginsConfig.model_validate({"enabled": enabled, **tables}))


def test_enabled_plugin_is_discovered_configured_and_ordered(fake_dist):
    plugins = load(["fake"], fake={"reason": "custom", "timeout_ms": 250, "on_error": "skip"})
    assert [p.name for p in plugins.loaded] == ["fake", "router", "caller_id"]
    fake = plugins.loaded[0]
    assert (fake.distribution, fake.version, fake.timeout_s, fake.on_error) == ("callgate-fake", "1.0", 0.25, "skip")
    assert fake.instance.config.reason == "custom"
    assert plugins.hooks_of("fake") == ["authorize_call"]


def test_installed_but_not_enabled_is_not_imported(fake_dist):
    assert {"fake", "broken", "idle"} <= set(installed_plugins())
    load(["fake"])
    assert "callgate_fake_idle" not in sys.modules and "callgate_fake_broken" not in sys.modules


def test_enabled_but_not_installed_names_the_package_and_fix():
    with pytest.raises(PluginError) as err:
        load(["no_such_plugin"])
    message = str(err.value)
    assert "'no_such_plugin'" in message and "pip install callgate-no-such-plugin" in message
    assert "remove 'no_such_plugin' from [plugins] enabled" in message


def test_import_failure_names_plugin_package_and_cause(fake_dist):
    with pytest.raises(PluginError) as err:
        load(["broken"])
    message = str(err.value)
    assert "'broken'" in message and "callgate-fake" in message and "no_such_module_anywhere" in message
    assert "pip install -U callgate-fake" in message


def test_invalid_config_names_the_toml_key(fake_dist):
    with pytest.raises(PluginError) as err:
        load(["fake"], fake={"reason": 5})
    assert "[plugins.fake].reason" in str(err.value)
    with pytest.raises(PluginError) as err:
        load(["fake"], fake={"reasn": "typo"})
    assert "[plugins.fake].reasn" in str(err.value) and "unknown key: this table has no such setting" in str(err.value)


class Lax:
    """A plugin whose Config says nothing about extra keys (pydantic alone would ignore them)."""

    class Config(BaseModel):
        blocked: list[str] = []
        limit: int = Field(3, alias="max")

    def __init__(self, config):
        self.config = config


class Open:
    """A plugin that takes extra keys on purpose."""

    class Config(BaseModel, extra="allow"):
        blocked: list[str] = []

    def __init__(self, config):
        self.config = config


def test_unknown_keys_are_refused_unless_the_plugins_config_chose_what_to_do_with_them():
    """A typo in a plugin's table stops start-up naming the key, even when its Config does not say extra="forbid";
    a Config that sets extra itself keeps its choice."""
    def built(cls, table):
        return load_plugins(PluginsConfig.model_validate({"enabled": ["p"], "p": table}), classes={"p": cls})

    with pytest.raises(PluginError) as err:
        built(Lax, {"blockd": ["+46700000001"], "limit": 5})
    assert str(err.value) == ("plugin 'p': invalid configuration:\n"
                              "config.toml: [plugins.p].blockd: unknown key: this table has no such setting (a typo?)\n"
                              "config.toml: [plugins.p].limit: unknown key: this table has no such setting (a typo?)")
    assert built(Lax, {"blocked": ["+46700000001"], "max": 5, "timeout_ms": 50}).loaded[0].instance.config.limit == 5
    assert built(Open, {"blockd": ["x"]}).loaded[0].instance.config.model_extra == {"blockd": ["x"]}


@pytest.mark.parametrize("table,needle", [({"timeout_ms": 0}, "timeout_ms"), ({"on_error": "ignore"}, "on_error")])
def test_reserved_keys_are_validated(fake_dist, table, needle):
    with pytest.raises(PluginError, match=needle):
        load(["fake"], fake=table)


def test_env_secret_in_plugin_config_is_read_from_environment(fake_dist, monkeypatch):
    monkeypatch.setenv("FAKE_TOKEN", "s3cr3t-value")
    config = config_from_dict({"plugins": {"enabled": ["fake"], "fake": {"token": {"env": "FAKE_TOKEN"}}}})
    plugins = load_plugins(config.plugins)
    assert plugins.loaded[0].instance.config.token.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(plugins.loaded[0].instance.config)


def test_table_for_a_plugin_that_is_not_enabled_is_an_error():
    with pytest.raises(PluginError, match=r"\[plugins.allowlist\] table but 'allowlist' is not in \[plugins\] enabled"):
        load([], allowlist={"default": "deny"})


def test_builtins_cannot_be_listed():
    with pytest.raises(PluginError, match="built in and always enabled"):
        load(["router"])


def test_settings_for_a_plugin_without_config_are_refused():
    with pytest.raises(PluginError, match="takes none"):
        load_plugins(PluginsConfig.model_validate({"enabled": ["rec"], "rec": {"x": 1}}), classes={"rec": Recorder})


def test_unknown_hook_name_is_refused():
    from callgate import hookimpl

    class Typo:
        @hookimpl
        def authorise_call(self, call):
            return None

    with pytest.raises(PluginError, match=r"'typo'.*authorise_call"):
        load_plugins(PluginsConfig.model_validate({"enabled": ["typo"]}), classes={"typo": Typo})


def test_unknown_hook_argument_is_refused():
    from callgate import hookimpl

    class BadArgs:
        @hookimpl
        def authorize_call(self, call, caller):
            return None

    with pytest.raises(PluginError) as err:
        load_plugins(PluginsConfig.model_validate({"enabled": ["bad"]}), classes={"bad": BadArgs})
    assert str(err.value) == ("plugin 'bad': authorize_call() takes caller, which the hook authorize_call does not "
                              "give (its arguments: call, dry_run). Fix: take only those, by those names (any of "
                              "them, in any order)")


def test_a_hook_argument_with_a_default_is_fine_and_one_without_is_refused():
    from callgate import hookimpl

    class Defaults:
        @hookimpl
        def set_cli(self, route, call, verbose=False):
            return None

    class KeywordOnly:
        @hookimpl
        def check_ready(self, *, strict):
            return None

    assert load_plugins(PluginsConfig.model_validate({"enabled": ["d"]}), classes={"d": Defaults}).impls("set_cli")
    with pytest.raises(PluginError, match=r"^plugin 'k': check_ready\(\) takes strict, which the hook check_ready does "
                                          r"not give \(its arguments: none\)"):
        load_plugins(PluginsConfig.model_validate({"enabled": ["k"]}), classes={"k": KeywordOnly})


def test_a_method_named_like_a_hook_without_hookimpl_is_refused():
    """pluggy ignores it, so a deny-list whose authorize_call lacks the mark would let every call through."""
    class Unmarked:
        def authorize_call(self, call):
            return Deny("blocked")

    with pytest.raises(PluginError) as err:
        load_plugins(PluginsConfig.model_validate({"enabled": ["u"]}), classes={"u": Unmarked})
    assert str(err.value) == ("plugin 'u': authorize_call() is named like the hook authorize_call but is not marked "
                              "@hookimpl, so callgate would never call it. Fix: put @hookimpl (from callgate import "
                              "hookimpl) above it, or rename it")


async def test_startup_and_shutdown_run_in_order(fake_dist):
    plugins = load(["fake"])
    await plugins.startup()
    await plugins.shutdown()
    assert plugins.loaded[0].instance.events == ["startup", "shutdown"]


def test_every_hook_is_known():
    assert set(HOOK_NAMES) == {"authorize_call", "route_call", "set_cli", "call_decided", "on_answer",
                               "on_prompt_input", "on_disconnect", "on_notify", "check_ready", "collect_metrics",
                               "register_commands", "callback_answered", "register_ops_routes"}


def test_plugin_given_by_class_is_used_instead_of_entry_point():
    plugins = load_plugins(PluginsConfig.model_validate({"enabled": ["allow"], "allow": {"max_duration": 5}}),
                           classes={"allow": AllowWith})
    assert plugins.loaded[0].instance.config.max_duration == 5


async def test_failed_startup_stops_the_plugins_already_started():
    events = []

    class Good:
        async def startup(self):
            events.append("good started")

        async def shutdown(self):
            events.append("good stopped")

    class Bad:
        async def startup(self):
            raise ConnectionRefusedError("database down")

    plugins = load_plugins(PluginsConfig.model_validate({"enabled": ["good", "bad"]}), classes={"good": Good, "bad": Bad})
    with pytest.raises(PluginError, match="'bad': startup\\(\\) failed: ConnectionRefusedError: database down"):
        await plugins.startup()
    assert events == ["good started", "good stopped"]


class WrapsDisconnect:
    """A new-style pluggy wrapper: callgate has no wrappers, so this must not load."""

    @hookimpl(wrapper=True)
    def on_disconnect(self, call):
        result = yield
        return result


class OldStyleWrapper:
    @hookimpl(hookwrapper=True)
    def on_disconnect(self, call):
        yield


class TriesFirst:
    @hookimpl(tryfirst=True)
    def authorize_call(self, call):
        return None


class TriesLast:
    @hookimpl(trylast=True)
    def route_call(self, call):
        return None


@pytest.mark.parametrize("cls, hook, option, instead", [
    (WrapsDisconnect, "on_disconnect", "wrapper=True", "no wrappers"),
    (OldStyleWrapper, "on_disconnect", "hookwrapper=True", "no wrappers"),
    (TriesFirst, "authorize_call", "tryfirst=True", "move 'odd' to the front of [plugins] enabled"),
    (TriesLast, "route_call", "trylast=True", "move 'odd' to the end of [plugins] enabled"),
])
def test_hookimpl_options_callgate_does_not_honour_are_refused(cls, hook, option, instead):
    with pytest.raises(PluginError) as err:
        load_plugins(PluginsConfig.model_validate({"enabled": ["odd"]}), classes={"odd": cls})
    message = str(err.value)
    assert err.value.plugin == "odd" and message.startswith("plugin 'odd':")
    assert f"{hook}" in message and f"@hookimpl({option})" in message
    assert "[plugins] enabled" in message and instead in message


def test_hookimpl_specname_is_honoured():
    class Named:
        @hookimpl(specname="authorize_call")
        def refuse_everyone(self, call):
            return Deny("named")

    plugins = load_plugins(PluginsConfig.model_validate({"enabled": ["named"]}), classes={"named": Named})
    assert [impl.plugin.name for impl in plugins.impls("authorize_call")] == ["named"]
    assert plugins.hooks_of("named") == ["authorize_call"]


def test_optionalhook_on_a_name_callgate_does_not_have_is_refused():
    class Optional:
        @hookimpl(optionalhook=True)
        def authorise_call(self, call):
            return None

    with pytest.raises(PluginError, match=r"'optional'.*authorise_call.*not a callgate hook"):
        load_plugins(PluginsConfig.model_validate({"enabled": ["optional"]}), classes={"optional": Optional})


def test_optionalhook_on_a_callgate_hook_changes_nothing():
    class Optional:
        @hookimpl(optionalhook=True)
        def authorize_call(self, call):
            return Deny("optional")

    plugins = load_plugins(PluginsConfig.model_validate({"enabled": ["optional"]}), classes={"optional": Optional})
    assert [impl.plugin.name for impl in plugins.impls("authorize_call")] == ["optional"]


class _Secretive:
    """A plugin with secrets at several depths."""

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        class Sink(BaseModel):
            url: str
            token: SecretStr
            headers: dict[str, SecretStr] = {}

        api_key: SecretStr | None = None
        sinks: list[Sink] = []
        default_key: SecretStr = SecretStr("a default is not in the file")
        database_url: SecretStr = SecretStr("sqlite:///default.sqlite3")     # a secret for the password it may hold

    def __init__(self, config):
        self.config = config


def test_a_plugins_secret_written_in_the_file_is_refused_naming_the_key_never_the_value(monkeypatch):
    monkeypatch.setenv("SECRETIVE_TOKEN", "from-the-environment")
    table = {"api_key": "sk-literal-one", "database_url": "postgresql://callgate:literal-pw@db/callgate", "sinks": [
        {"url": "https://a.example", "token": {"env": "SECRETIVE_TOKEN"}, "headers": {"X-Fine": {"env": "SECRETIVE_TOKEN"}}},
        {"url": "https://b.example", "token": "literal-two", "headers": {"Authorization": "literal-three"}},
    ]}
    config = config_from_dict({"plugins": {"enabled": ["secretive"], "secretive": table}}, source="cfg.toml")
    with pytest.raises(PluginError) as raised:
        load_plugins(config.plugins, classes={"secretive": _Secretive}, source="cfg.toml")
    message = str(raised.value)
    assert ("[plugins.secretive].api_key, [plugins.secretive].sinks[1].token, [plugins.secretive].sinks[1].headers."
            "Authorization, [plugins.secretive].database_url: a secret must not be written in the file") in message
    assert "literal" not in message and "from-the-environment" not in message


def test_a_plugins_secrets_from_the_environment_or_left_at_their_default_are_fine(monkeypatch):
    monkeypatch.setenv("SECRETIVE_TOKEN", "from-the-environment")
    table = {"api_key": {"env": "SECRETIVE_TOKEN"}, "database_url": "postgresql://db.internal/callgate",   # no password
             "sinks": [{"url": "https://a.example", "token": {"env": "SECRETIVE_TOKEN"}}]}
    config = config_from_dict({"plugins": {"enabled": ["secretive"], "secretive": table}})
    plugins = load_plugins(config.plugins, classes={"secretive": _Secretive})
    settings = next(p.instance.config for p in plugins.loaded if p.name == "secretive")
    assert settings.api_key.get_secret_value() == settings.sinks[0].token.get_secret_value() == "from-the-environment"


class WrongDefaults:
    default_timeout_ms = 0
    default_on_error = "maybe"


@pytest.mark.parametrize("table, says", [
    ({}, "the plugin's default_timeout_ms (its class, not config.toml) must be a whole number of milliseconds "
         "from 1 to 30000, got 0"),
    ({"timeout_ms": 100}, "the plugin's default_on_error (its class, not config.toml) must be \"deny\" or \"skip\""),
    ({"timeout_ms": 40000}, "config.toml: [plugins.odd].timeout_ms must be a whole number of milliseconds"),
])
def test_a_bad_default_of_the_plugin_class_is_not_blamed_on_the_config_file(table, says):
    from callgate.manager import build_plugin
    with pytest.raises(PluginError) as refused:
        build_plugin("odd", WrongDefaults, table, source="config.toml")
    assert says in str(refused.value)


def test_an_entry_point_that_names_no_class_says_how_to_write_it():
    from callgate.manager import build_plugin
    with pytest.raises(PluginError) as refused:
        build_plugin("odd", 42, {}, source="config.toml")
    assert "its entry point names 42, not a class" in str(refused.value)
    assert 'odd = "module:ClassName"' in str(refused.value)
