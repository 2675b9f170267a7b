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
    ({"plugins": {"enabled": "allowlist"}}, '[plugins].enabled: must be a list, like ["a", "b"]'),
    ({"server": {"prot": 80}}, "[server].prot: unknown key: this table has no such setting (a typo?)"),
    ({"server": {"port": True}}, "[server].port: must be a port number (0-65535), not true or false"),
    ({"server": {"port": 9100, "ops_port": 9100}}, "[server].ops_port: must differ from port (9100)"),
    ({"server": {"webhook_path": "/healthz"}}, "[server].webhook_path: must not be '/healthz'"),
    ({"server": {"callback_path": "/metrics"}}, "[server].callback_path: must not be '/metrics'"),
    ({"server": {"host": ""}}, '[server].host: must name an address: "127.0.0.1"'),
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


# --- Voice API v2: the webhook path, the voice, services -------------------------------------------------

SERVICE_ENV = {"SINCH_SERVICE_ID": "b7e4c2d9-3a5f-4e61-8d2c-9f0a1b3c5e77", "SINCH_SERVICE_SECRET": "qN7xK2vR9tWm4pLs8eYb3g=="}


def test_shipped_config_toml_serves_the_env_service_beside_the_env_application():
    config = load_config(ROOT / "config.toml", environ={**ENV, **SERVICE_ENV})
    assert config.server.webhook_path == "/sinch/webhook" and config.server.signed_webhook_path == "/sinch/webhook"
    assert config.server.voice == "Emma"
    assert config.service_secrets() == {SERVICE_ENV["SINCH_SERVICE_ID"]: [SERVICE_ENV["SINCH_SERVICE_SECRET"]]}
    assert config.application_secrets() == {"app-key": ["c2VjcmV0LXZhbHVl"]}


@pytest.mark.parametrize("environ, missing", [({"SINCH_SERVICE_ID": "s"}, "SINCH_SERVICE_SECRET"),
                                              ({"SINCH_SERVICE_SECRET": "YQ=="}, "SINCH_SERVICE_ID"),
                                              ({"SINCH_APPLICATION_KEY": "k"}, "SINCH_APPLICATION_SECRET"),
                                              ({"SINCH_APPLICATION_SECRET": "YQ=="}, "SINCH_APPLICATION_KEY")])
def test_one_variable_of_a_pair_is_refused_naming_the_other(environ, missing):
    """Half a credential would configure nothing, and every callback would get 401 without a word at start-up."""
    with pytest.raises(ConfigError, match=f"is set but {missing} is not: set both") as refused:
        config_from_dict({}, environ=environ)
    assert "YQ==" not in str(refused.value)
    table = "services" if "SERVICE" in missing else "applications"
    written = {table: [{"id" if table == "services" else "key": "x", "secrets": [{"env": "X"}]}]}
    assert config_from_dict(written, environ={**environ, "X": "Yg=="})      # the file's table: the pair is not used


def test_services_table_rotation_and_several_services():
    config = config_from_dict({"services": [{"id": "s1", "secrets": [{"env": "OLD"}, {"env": "NEW"}]},
                                            {"id": "s2", "secrets": [{"env": "S2"}]}]},
                              environ={**SERVICE_ENV, "OLD": "YQ==", "NEW": "Yg==", "S2": "Yw=="})
    assert config.service_secrets() == {"s1": ["YQ==", "Yg=="], "s2": ["Yw=="]}     # the table wins over the env
    assert "YQ==" not in repr(config) and "Yg==" not in str(config.services)


def test_a_service_secret_written_in_the_file_is_refused_with_the_fix():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"services": [{"id": "s", "secrets": [{"env": "S"}, "c2VjcmV0"]}]}, source="config.toml",
                         environ={"S": "YQ=="})
    message = str(err.value)
    assert message.startswith("config.toml: services[0].secrets[1]: a secret must not be written in the file")
    assert 'secrets = [{ env = "SINCH_SERVICE_SECRET" }]' in message and "c2VjcmV0" not in message


def test_a_service_secret_variable_that_is_not_set_names_key_and_variable():
    with pytest.raises(ConfigError, match=r"services\[0\].secrets\[0\]: environment variable NOPE is not set"):
        config_from_dict({"services": [{"id": "s", "secrets": [{"env": "NOPE"}]}]}, environ={})


@pytest.mark.parametrize("data,needle", [
    ({"services": [{"id": "", "secrets": [{"env": "S"}]}]}, "services[0].id: must not be empty"),
    ({"services": [{"id": "s", "secrets": []}]}, "services[0].secrets: "),
    ({"services": [{"id": "s", "secrets": [{"env": "S"}] * 3}]}, "services[0].secrets: "),
    ({"services": [{"id": "s", "secret": [{"env": "S"}]}]}, "services[0].secret: unknown key: this table has no such setting"),
    ({"services": [{"id": "s", "secrets": [{"env": "S"}]}] * 2}, "services: service id 's' is listed twice"),
    ({"applications": [{"key": "k", "secrets": [{"env": "S"}]}] * 2}, "applications: application key 'k' is listed"),
    ({"server": {"webhook_path": "sinch/webhook"}}, "[server].webhook_path: must be an absolute URL path"),
    ({"server": {"webhook_path": "/sinch/webhook?x=1"}}, "[server].webhook_path: must be an absolute URL path"),
    ({"server": {"public_webhook_path": "v2"}}, "[server].public_webhook_path: must be an absolute URL path"),
    ({"server": {"webhook_path": "/sinch/callback"}}, "[server].webhook_path: must differ from callback_path"),
    ({"server": {"callback_path": "/x", "webhook_path": "/x"}}, "[server].webhook_path: must differ from callback_path"),
    ({"server": {"voice": ""}}, "[server].voice: must not be empty"),
    ({"server": {"locale": ""}}, "[server].locale: must not be empty"),
    ({"server": {"locale": " \t"}}, "[server].locale: must not be empty"),
    ({"server": {"voice": "  "}}, "[server].voice: must not be empty"),
    ({"server": {"no_route_prompt": "a" * 601}}, "[server].no_route_prompt: is 601 characters; Sinch speaks at most 600"),
])
def test_v2_errors_name_the_toml_key(data, needle):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, source="config.toml", environ={"S": "YQ=="})
    assert f"config.toml: {needle}" in str(err.value)


def test_public_webhook_path_is_what_is_signed():
    server = config_from_dict({"server": {"public_webhook_path": "/voice/v2"}}, environ={}).server
    assert (server.webhook_path, server.signed_webhook_path) == ("/sinch/webhook", "/voice/v2")
    assert server.signed_path == "/sinch/callback"           # the v1 path keeps its own


def test_same_signing_window_for_both_generations():
    from callgate.app import build_service_verifier, build_verifier
    config = config_from_dict({"signing": {"window_seconds": 90}}, environ={**ENV, **SERVICE_ENV})
    assert build_verifier(config).window_seconds == build_service_verifier(config).window_seconds == 90


def test_bad_base64_service_secret_is_a_config_error_without_the_secret():
    from callgate.app import build_service_verifier
    config = config_from_dict({}, environ={"SINCH_SERVICE_ID": "svc", "SINCH_SERVICE_SECRET": "not base64!!"})
    with pytest.raises(ConfigError) as err:
        build_service_verifier(config)
    assert str(err.value).startswith("<defaults>: services: service 'svc'") and "not base64!!" not in str(err.value)


def test_a_no_route_prompt_of_spaces_is_no_prompt_and_locale_and_voice_are_trimmed():
    server = config_from_dict({"server": {"no_route_prompt": "   ", "locale": " sv-SE ", "voice": " Astrid"}},
                              environ={}).server
    assert (server.no_route_prompt, server.locale, server.voice) == ("", "sv-SE", "Astrid")
