"""The webhook signature a receiver verifies."""

import hashlib
import hmac

import pytest

from callgate_crm_export.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureMismatch, sign, verify

SECRET = "s3cret-s3cret-s3cret"
BODY = b'{"callid":"c1","version":1}'


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    headers = sign(SECRET, BODY, timestamp=1741944581)
    expected = hmac.new(SECRET.encode(), b"1741944581." + BODY, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: "1741944581", SIGNATURE_HEADER: f"v1={expected}"}
    verify(SECRET, BODY, *headers.values(), now=1741944581 + 299)


@pytest.mark.parametrize("secret,body,delta,reason", [
    ("another-secret-xxxxx", BODY, 0, "bad_signature"),
    (SECRET, BODY.replace(b"c1", b"c2"), 0, "bad_signature"),
    (SECRET, BODY, 301, "stale"),
    (SECRET, BODY, -301, "stale"),
])
def test_wrong_secret_altered_body_or_old_timestamp_is_refused(secret, body, delta, reason):
    headers = sign(SECRET, BODY, timestamp=1741944581)
    with pytest.raises(SignatureMismatch) as err:
        verify(secret, body, *headers.values(), now=1741944581 + delta)
    assert err.value.reason == reason


def test_missing_or_malformed_headers_are_refused():
    with pytest.raises(SignatureMismatch, match="missing"):
        verify(SECRET, BODY, None, "v1=00")
    with pytest.raises(SignatureMismatch) as err:
        verify(SECRET, BODY, "yesterday", "v1=00")
    assert err.value.reason == "bad_timestamp"
    with pytest.raises(SignatureMismatch):
        verify(SECRET, BODY, "1741944581", "sha256=abc", now=1741944581)


def test_one_of_several_signatures_may_match():
    good = sign(SECRET, BODY, timestamp=100)[SIGNATURE_HEADER]
    verify(SECRET, BODY, "100", f"v1={'0' * 64}, {good}", now=100)
