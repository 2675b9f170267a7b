"""The retry policy, without waiting: classification, Retry-After, full-jitter backoff."""

import random
from datetime import datetime, timezone

import pytest

from callgate_crm_export.retry import AttemptResult, backoff_delay, classify, next_delay, parse_retry_after

NOW = datetime(2025, 3, 14, 9, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("status,kind,throttled", [
    (200, "delivered", False), (201, "delivered", False), (204, "delivered", False),
    (408, "retry", False), (425, "retry", False), (429, "retry", True), (500, "retry", False),
    (502, "retry", False), (503, "retry", True), (504, "retry", False), (599, "retry", False),
    (301, "permanent", False), (400, "permanent", False), (401, "permanent", False), (404, "permanent", False),
    (409, "permanent", False), (422, "permanent", False),
])
def test_classify(status, kind, throttled):
    result = classify(status, {}, "body")
    assert (result.kind, result.throttled, result.status) == (kind, throttled, status)
    if kind != "delivered":
        assert result.error == f"HTTP {status}: body"


def test_retry_after_in_seconds_and_as_a_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("Fri, 14 Mar 2025 09:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Fri, 14 Mar 2025 08:59:00 GMT", NOW) == 0.0        # in the past: now
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after("-5") is None
    assert classify(429, {"Retry-After": "7"}).retry_after == 7.0


def test_backoff_is_full_jitter_doubling_up_to_the_cap():
    rng = random.Random(1)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (8, 100.0), (500, 100.0)):
        draws = [backoff_delay(attempt, 1.0, 100.0, rng) for _ in range(2000)]
        assert 0.0 <= min(draws) and max(draws) <= ceiling
        assert max(draws) > ceiling * 0.95 and min(draws) < ceiling * 0.05      # the whole range is used


def test_retry_after_is_a_floor_but_capped():
    rng = random.Random(2)
    throttled = AttemptResult("retry", 429, "slow down", retry_after=30.0, throttled=True)
    assert all(next_delay(throttled, 1, initial=1, maximum=5, max_retry_after=3600, rng=rng) == 30.0
               for _ in range(100))
    assert next_delay(throttled, 1, initial=1, maximum=5, max_retry_after=10, rng=rng) == 10.0
    plain = AttemptResult("retry", 500, "boom")
    assert next_delay(plain, 3, initial=1, maximum=5, max_retry_after=10, rng=rng) <= 4.0
