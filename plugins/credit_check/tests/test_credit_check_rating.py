"""Rating rules: billing increments, cost rounding, affordable time (pure functions)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate_credit_check.rating import (
    Increments,
    Rate,
    RatingError,
    affordable_seconds,
    billed_seconds,
    charge,
    cost_unit,
    grant,
)

EUR = "EUR"


def rate(per_minute, increments="60/60", connect_fee=0):
    return Rate(currency=EUR, per_minute=per_minute, increments=Increments.parse(increments), connect_fee=connect_fee)


@pytest.mark.parametrize("text, first, nxt", [("60/60", 60, 60), ("30/6", 30, 6), ("1/1", 1, 1), (" 30 / 6 ", 30, 6)])
def test_increments_parse(text, first, nxt):
    assert Increments.parse(text) == Increments(first, nxt)
    assert str(Increments.parse(text)) == f"{first}/{nxt}"


@pytest.mark.parametrize("text", ["60", "60/", "/60", "0/60", "60/0", "a/b", "-1/1", "3601/1", "1.5/1"])
def test_bad_increments_are_refused(text):
    with pytest.raises(RatingError):
        Increments.parse(text)


@pytest.mark.parametrize("increments, duration, billed", [
    ("60/60", 0, 0), ("60/60", -5, 0), ("60/60", 1, 60), ("60/60", 60, 60), ("60/60", 61, 120), ("60/60", 168, 180),
    ("30/6", 1, 30), ("30/6", 30, 30), ("30/6", 31, 36), ("30/6", 36, 36), ("30/6", 37, 42),
    ("1/1", 1, 1), ("1/1", 168, 168),
])
def test_time_is_rounded_up_to_the_increments(increments, duration, billed):
    assert billed_seconds(duration, Increments.parse(increments)) == billed


def test_cost_is_connect_fee_plus_per_minute_rounded_up_to_the_unit():
    mobile = rate(120_000, "30/6", connect_fee=10_000)          # 0.12/min + 0.01
    assert charge(mobile, 300).cost == 10_000 + 600_000        # 0.61
    assert charge(mobile, 31) == charge(mobile, 36)              # billed 36 s
    assert charge(mobile, 36).cost == 10_000 + 72_000            # 0.12 * 36/60 = 0.072
    # 0.0083/min by the second: 7 s = 0.000968333... -> rounded up
    per_second = rate(8_300, "1/1")
    assert charge(per_second, 7).cost == 969                     # micro-units, rounded up
    assert charge(per_second, 7, cost_unit(2)).cost == 10_000    # to cents: 0.01
    assert charge(per_second, 7, cost_unit(4)).cost == 1_000     # to 4 decimals: 0.0010


def test_a_call_that_never_connected_costs_nothing_not_even_the_connect_fee():
    assert charge(rate(100_000, connect_fee=50_000), 0).cost == 0


def test_credit_for_exactly_n_minutes_grants_n_minutes():
    by_minute = rate(100_000)                                   # 0.10 per minute, 60/60
    assert grant(by_minute, 1_000_000, cap=14400).seconds == 600        # 1.00 -> 10 min
    assert grant(by_minute, 999_999, cap=14400).seconds == 540           # a micro short -> 9 min
    assert grant(by_minute, 1_000_000, cap=300).seconds == 300           # capped
    assert grant(by_minute, 1_000_000, cap=300).reserve == 500_000       # reserves the capped time only
    assert grant(by_minute, 99_999, cap=14400).seconds == 0              # not even the first minute
    with_fee = rate(100_000, "30/6", connect_fee=10_000)
    # 1.01 pays the fee and 10 minutes; 30 s first, then 6 s steps: 600 s is on the grid
    assert grant(with_fee, 1_010_000, cap=14400).seconds == 600
    assert grant(with_fee, 1_009_999, cap=14400).seconds == 594


def test_free_rates_are_limited_by_the_cap_only():
    assert affordable_seconds(rate(0), 0) is None
    assert grant(rate(0), 0, cap=3600) == grant(rate(0), 5, cap=3600)
    assert grant(rate(0), 0, cap=3600).seconds == 3600
    assert grant(rate(0, connect_fee=10_000), 9_999, cap=3600).seconds == 0   # the fee is still due


def test_cost_unit_bounds():
    assert cost_unit(6) == 1 and cost_unit(2) == 10_000 and cost_unit(0) == 1_000_000
    with pytest.raises(RatingError):
        cost_unit(7)


@settings(max_examples=400)
@given(per_minute=st.integers(0, 5_000_000), connect=st.integers(0, 1_000_000),
       first=st.integers(1, 120), nxt=st.integers(1, 120), available=st.integers(-1_000, 50_000_000),
       decimals=st.integers(0, 6))
def test_affordable_time_is_the_longest_the_credit_pays_for(per_minute, connect, first, nxt, available, decimals):
    r = Rate(currency=EUR, per_minute=per_minute, increments=Increments(first, nxt), connect_fee=connect)
    unit = cost_unit(decimals)
    seconds = affordable_seconds(r, available, unit)
    if seconds is None:
        assert per_minute == 0 and charge(r, first, unit).cost <= available
        return
    if seconds == 0:
        assert charge(r, first, unit).cost > available
        return
    assert billed_seconds(seconds, r.increments) == seconds            # on the increment grid
    assert charge(r, seconds, unit).cost <= available                  # affordable
    assert charge(r, seconds + nxt, unit).cost > available             # one more increment is not


@settings(max_examples=400)
@given(per_minute=st.integers(1, 5_000_000), available=st.integers(0, 50_000_000), cap=st.integers(1, 14400),
       first=st.integers(1, 120), nxt=st.integers(1, 120))
def test_a_grant_never_reserves_more_than_is_available(per_minute, available, cap, first, nxt):
    r = Rate(currency=EUR, per_minute=per_minute, increments=Increments(first, nxt))
    g = grant(r, available, cap)
    assert g.reserve <= available
    assert g.seconds <= cap
    if g.allowed:
        assert g.reserve == charge(r, g.seconds).cost      # a call of the granted length is fully covered


def test_an_overdrawn_account_gets_nothing_not_even_free_calls():
    assert grant(rate(0), -1, cap=3600).seconds == 0
    assert grant(rate(0), 0, cap=3600).seconds == 3600
