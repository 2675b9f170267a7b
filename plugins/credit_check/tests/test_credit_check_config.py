"""``[plugins.credit_check]``: bad settings stop start-up with a message naming the key."""

import pytest

from callgate.manager import PluginError, build_plugin
from callgate_credit_check import CreditCheck


@pytest.mark.parametrize("table, message", [
    ({"colour": 1}, "[plugins.credit_check].colour: unknown key: this table has no such setting"),
    ({"database_url": "mysql://u:secret@h/db"}, "[plugins.credit_check].database_url: | must be sqlite"),
    ({"account_by": "custom"}, 'account_by = "custom" needs account_key'),
    ({"account_by": "phone"}, "[plugins.credit_check].account_by"),
    ({"rates": "cheap"}, "[plugins.credit_check].rates"),
    ({"sinch_increments": "60"}, "[plugins.credit_check].sinch_increments: | billing increments '60'"),
    ({"sinch_connect_fee": "0.0000001"}, "sinch_connect_fee: '1E-7' has more than 6 decimal places"),
    ({"sinch_markup": 0}, "[plugins.credit_check].sinch_markup"),
    ({"max_duration": 20000}, "[plugins.credit_check].max_duration: Input should be less than or equal to 14400"),
    ({"cost_decimals": 7}, "[plugins.credit_check].cost_decimals"),
    ({"low_balance_prompt": "{minutes} left"}, "[plugins.credit_check].low_balance_prompt: | only {time}"),
    ({"deny_prompt": "x" * 700}, "[plugins.credit_check].deny_prompt: | is 700 characters"),
    ({"locale": ""}, "[plugins.credit_check].locale: must not be empty"),
    ({"on_error": "ignore"}, '[plugins.credit_check].on_error must be "deny" or "skip"'),
    ({"destination_types": ["number", "fax"]}, "[plugins.credit_check].destination_types: | 'fax' is not one of "
                                               "conference, did, number, sip, stream, username, voice_relay"),
])
def test_bad_settings_name_the_key(table, message):
    with pytest.raises(PluginError) as error:
        build_plugin("credit_check", CreditCheck, table, source="config.toml")
    for part in message.split(" | "):       # the key, then what is wrong with it
        assert part in str(error.value)
    assert "secret" not in str(error.value)


def test_defaults_fail_closed_and_use_a_local_sqlite_file():
    plugin = build_plugin("credit_check", CreditCheck, {}, source="config.toml")
    assert plugin.on_error == "deny"
    config = plugin.instance.config
    assert config.database_url.get_secret_value() == "sqlite:///var/callgate/credit.sqlite3"
    assert (config.account_by, config.rates, config.max_duration, config.cost_decimals) == ("caller", "table", 3600, 6)
    assert "var/callgate" not in repr(config)          # the URL is a secret: never in reprs or logs


def test_toml_numbers_are_read_exactly():
    plugin = build_plugin("credit_check", CreditCheck, {"sinch_markup": 1.1, "sinch_connect_fee": 0.05})
    config = plugin.instance.config
    assert (str(config.sinch_markup), str(config.sinch_connect_fee)) == ("1.1", "0.05")
