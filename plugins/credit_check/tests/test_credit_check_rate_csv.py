"""The rate table CSV: what is read, and every bad input refused with its line."""

import pytest

from callgate_credit_check.rate_csv import RateFileError, format_rates, parse_rates
from callgate_credit_check.rating import Increments


def test_reads_every_column_with_defaults(rates_csv):
    rates = parse_rates(rates_csv)
    assert [(r.currency, r.prefix) for r in rates] == [("EUR", "46"), ("EUR", "4670"), ("USD", "1")]
    mobile = rates[1]
    assert (mobile.per_minute, mobile.connect_fee, mobile.increments, mobile.name) == \
        (120_000, 10_000, Increments(30, 6), "Sweden mobile")
    assert rates[2].connect_fee == 0                        # empty connect_fee -> 0


def test_minimal_columns_any_order_comments_and_blank_lines():
    rates = parse_rates("# our prices\nper_minute,prefix,currency\n\n0.05,44,gbp\n")
    assert len(rates) == 1
    assert (rates[0].prefix, rates[0].currency, rates[0].per_minute, rates[0].increments) == \
        ("44", "GBP", 50_000, Increments(60, 60))


def test_export_reads_back_the_same_table(rates_csv):
    rates = parse_rates(rates_csv)
    assert parse_rates(format_rates(rates)) == rates


@pytest.mark.parametrize("body, message", [
    ("", "no header row"),
    ("prefix,currency,per_minute\n", "no rates after the header"),
    ("prefix,currency\n46,EUR\n", "missing column 'per_minute'"),
    ("prefix,currency,per_minute,colour\n46,EUR,0.1,red\n", "unknown column 'colour'"),
    ("prefix,currency,per_minute\n46,EUR\n", ":2: 2 values for 3 columns"),
    ("prefix,currency,per_minute\n46x,EUR,0.1\n", ":2: prefix '46x'"),
    ("prefix,currency,per_minute\n46,EURO,0.1\n", ":2: currency: 'EURO'"),
    ("prefix,currency,per_minute\n46,EUR,-0.1\n", ":2: per_minute: '-0.1' must not be negative"),
    ("prefix,currency,per_minute\n46,EUR,0.10000001\n", ":2: per_minute: .* more than 6 decimal"),
    ("prefix,currency,per_minute,increments\n46,EUR,0.1,60\n", ":2: billing increments '60'"),
    ("prefix,currency,per_minute\n46,EUR,0.1\n\n+46,EUR,0.2\n", ":4: prefix \\+46 in EUR is already on line 2"),
])
def test_bad_files_name_the_line_and_the_problem(body, message):
    with pytest.raises(RateFileError, match=message):
        parse_rates(body, source="rates.csv")


def test_same_prefix_in_two_currencies_is_fine():
    assert len(parse_rates("prefix,currency,per_minute\n46,EUR,0.1\n46,USD,0.11\n")) == 2
