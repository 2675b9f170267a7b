"""Money: exact Decimal at the edges, integer micro-units inside."""

from decimal import Decimal

import pytest

from callgate_credit_check.money import MoneyError, format_money, from_micros, micros_ceil, money_text, parse_currency, to_micros


@pytest.mark.parametrize("text, micros", [("10", 10_000_000), ("0.0083", 8_300), ("1.5", 1_500_000),
                                          ("0.000001", 1), (" 2.50 ", 2_500_000), (Decimal("0.0231"), 23_100)])
def test_to_micros_is_exact(text, micros):
    assert to_micros(text) == micros


@pytest.mark.parametrize("value, message", [
    ("0.0000001", "more than 6 decimal places"), ("abc", "not a number"), ("NaN", "not a finite number"),
    ("Infinity", "not a finite number"), ("-1", "must not be negative"), (0.1, "not float"),
    ("1e13", "larger than"),
])
def test_bad_amounts_are_refused_with_the_reason(value, message):
    with pytest.raises(MoneyError, match=message):
        to_micros(value)


def test_negative_amounts_only_where_allowed():
    assert to_micros("-1.25", allow_negative=True) == -1_250_000


@pytest.mark.parametrize("micros, text", [(0, "0.00"), (8_300, "0.0083"), (1_500_000, "1.50"), (10_000_000, "10.00"),
                                          (-250_000, "-0.25"), (1, "0.000001"), (123_456_789, "123.456789")])
def test_money_text_round_trips(micros, text):
    assert money_text(micros) == text
    assert from_micros(micros) == Decimal(text)
    assert to_micros(text, allow_negative=True) == micros


def test_format_money_and_markup_rounding():
    assert format_money(1_500_000, "EUR") == "1.50 EUR"
    assert micros_ceil(Decimal("0.0083") * Decimal("1.15")) == 9_545      # 0.009545 exactly
    assert micros_ceil(Decimal("0.0083") * Decimal("1.333")) == 11_064     # 0.0110639 -> up


@pytest.mark.parametrize("text, code", [("eur", "EUR"), (" USD ", "USD")])
def test_currency_codes(text, code):
    assert parse_currency(text) == code


@pytest.mark.parametrize("text", ["EU", "EURO", "12A", ""])
def test_bad_currency_codes(text):
    with pytest.raises(MoneyError, match="ISO-4217"):
        parse_currency(text)
