"""config.toml: defaults, the environment, and errors that name the file and the key."""

from pathlib import Path

import pytest

from callgate.config import ConfigError, config_from_dict, load_config
from callgate.manager import load_plugins

ROOT = Path(__file__).resolve().parent.parent
ENV = {"SINCH_APPLICATION_KEY": "app-key", "SINCH_APPLICATION_SECRET": "c2VjcmV0LXZhbHVl"}


def test_shipped_config_toml_is_valid_and_serves_the_env_application():
    config = load_config(ROOT / "config.toml", environ=ENV)
    assert config.server.callback_path == "/sinch/callback"
    assert config.application_secrets() == {"app-key": ["c2VjcmV0LXZhbHVl"]}
    names = [p.name for p in load_plugins(config.plugins).loaded]
    assert names == ["router", "caller_id"]


def test_no_file_means_the_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.source == "<defaults>" and config.server.port == 8080 and config.applications == ()


def test_callgate_config_variable_names_the_file(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("[server]\nport = 9999\n")
    assert load_config(environ={"CALLGATE_CONFIG": str(path)}).server.port == 9999


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: no such file"):
        load_config(tmp_path / "nope.toml", environ={})


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_config(path, environ={})


@pytest.mark.parametrize("data,needle", [
    ({"server": {"port": "http"}}, "[server].port"),
    ({"server": {"prot": 80}}, "[server].prot"),
    ({"server": {"callback_path": "sinch"}}, "[server].callback_path"),
    ({"server": {"default_decision": "maybe"}}, "[server].default_decision"),
    ({"signing": {"window_seconds": 0}}, "[signing].window_seconds"),
    ({"applications": [{"key": "k", "secrets": []}]}, "applications[0].secrets"),
    ({"plugins": {"enabled": ["a", "a"]}}, "[plugins].enabled"),
])
def test_errors_name_the_toml_key(data, needle):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, source="config.toml", environ={})
    assert f"config.toml: {needle}" in str(err.value)


def test_secrets_come_from_the_environment_only():
    with pytest.raises(ConfigError, match="must not be written in the file"):
        config_from_dict({"applications": [{"key": "k", "secrets": ["c2VjcmV0"]}]}, environ={})
    config = config_from_dict({"applications": [{"key": "k", "secrets": [{"env": "S1"}, {"env": "S2"}]}]},
                              environ={"S1": "YQ==", "S2": "Yg=="})
    assert config.application_secrets() == {"k": ["YQ==", "Yg=="]}
    assert "YQ==" not in repr(config)


def test_missing_environment_variable_names_key_and_variable():
    with pytest.raises(ConfigError, match=r"applications\[0\].secrets\[0\]: environment variable NOPE is not set"):
        config_from_dict({"applications": [{"key": "k", "secrets": [{"env": "NOPE"}]}]}, environ={})


def test_configured_applications_win_over_the_environment():
    config = config_from_dict({"applications": [{"key": "k", "secrets": [{"env": "S1"}]}]}, environ={**ENV, "S1": "YQ=="})
    assert list(config.application_secrets()) == ["k"]


def test_bad_base64_secret_is_a_config_error_without_the_secret():
    from callgate.app import build_verifier
    config = config_from_dict({}, environ={"SINCH_APPLICATION_KEY": "k", "SINCH_APPLICATION_SECRET": "not base64!!"})
    with pytest.raises(ConfigError) as err:
        build_verifier(config)
    assert "'k'" in str(err.value) or " k" in str(err.value)
    assert "not base64!!" not in str(err.value)
