"""callgate.protocols.v1.signing: the official vectors, their negative cases, and every refusal reason."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from callgate.protocols.v1.signing import (
    SignatureError,
    Verifier,
    authorization,
    content_md5,
    signature,
    signed_headers,
    string_to_sign,
)

FIXTURES = Path(__file__).parent / "fixtures"
VECTORS = json.loads((FIXTURES / "signing-vectors.json").read_text(encoding="utf-8"))["vectors"]
VECTOR_IDS = [v["name"] for v in VECTORS]

KEY = "7f3c9e21-5b4a-4d8e-a1c2-93e0b7d4f615"
SECRET = base64.b64encode(b"callgate-test-secret-0123456789!").decode()
OTHER_SECRET = base64.b64encode(b"a-second-secret-for-rotation-xyz").decode()
PATH = "/sinch/callback"
BODY = b'{"event":"dice","callid":"c1","reason":"CALLERHANGUP","result":"ANSWERED","version":1}'
TS = "2025-03-14T09:26:53.5897932Z"
T0 = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=timezone.utc).timestamp()
WINDOW = 300


def at(seconds: float):
    return lambda: seconds


def epoch(x_timestamp: str) -> float:
    return datetime.fromisoformat(x_timestamp[:26].rstrip("Z") + "+00:00").timestamp()


def vector_verifier(vector, secret: str | None = None) -> Verifier:
    inputs = vector["inputs"]
    return Verifier({inputs["application_key"]: [secret or inputs["application_secret_b64"]]},
                    window_seconds=WINDOW, clock=at(epoch(inputs["x_timestamp"])))


def verifier(clock_at: float = T0, **applications) -> Verifier:
    return Verifier(applications or {KEY: [SECRET]}, window_seconds=WINDOW, clock=at(clock_at))


def headers(*, key: str = KEY, secret: str = SECRET, path: str = PATH, body: bytes = BODY,
            timestamp: str = TS, content_type: str = "application/json") -> dict[str, str]:
    return signed_headers(key, secret, path, body, content_type=content_type, timestamp=timestamp)


def refusal(v: Verifier, hdrs, *, path: str = PATH, body: bytes = BODY, method: str = "POST") -> SignatureError:
    with pytest.raises(SignatureError) as info:
        v.verify(method, path, hdrs, body)
    return info.value


# --------------------------------------------------------------------------- the vectors


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_intermediates_and_authorization(vector):
    inputs, intermediate = vector["inputs"], vector["intermediate"]
    body = inputs["body"].encode("utf-8")
    md5 = content_md5(body)
    assert md5 == intermediate["content_md5_b64"]
    sts = string_to_sign(inputs["method"], md5, inputs["content_type"], inputs["x_timestamp"], inputs["path"])
    assert sts == intermediate["string_to_sign"]
    assert signature(inputs["application_secret_b64"], sts) == intermediate["signature_b64"]
    assert authorization(inputs["application_key"], inputs["application_secret_b64"], inputs["method"],
                         inputs["path"], body, inputs["content_type"], inputs["x_timestamp"]) \
        == vector["expected"]["authorization"]
    assert signed_headers(inputs["application_key"], inputs["application_secret_b64"], inputs["path"], body,
                          content_type=inputs["content_type"], timestamp=inputs["x_timestamp"]) == {
        "Content-Type": inputs["content_type"],
        "x-timestamp": inputs["x_timestamp"],
        "Authorization": vector["expected"]["authorization"],
    }


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_request_as_sent_verifies(vector):
    inputs = vector["inputs"]
    sent = vector["expected"]["request_headers_as_sent"]
    body = inputs["body"].encode("utf-8")
    v = vector_verifier(vector)
    assert v.verify("POST", inputs["path"], sent, body) == inputs["application_key"]
    # the same headers as aiohttp hands them over, with the usual capitalisation
    proxy = CIMultiDictProxy(CIMultiDict({"Content-Type": sent["content-type"], "X-Timestamp": sent["x-timestamp"],
                                          "Authorization": sent["authorization"]}))
    assert v.verify("POST", inputs["path"], proxy, body) == inputs["application_key"]
    # a plain dict with mixed-case names is matched case-insensitively too
    mixed = {"CONTENT-TYPE": sent["content-type"], "X-Timestamp": sent["x-timestamp"],
             "Authorization": sent["authorization"]}
    assert v.verify("post", inputs["path"], mixed, body) == inputs["application_key"]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
@pytest.mark.parametrize("scheme", ["application", "APPLICATION", "Application"])
def test_vector_scheme_is_case_insensitive(vector, scheme):
    sent = dict(vector["expected"]["request_headers_as_sent"])
    sent["authorization"] = scheme + sent["authorization"][len("Application"):]
    inputs = vector["inputs"]
    assert vector_verifier(vector).verify("POST", inputs["path"], sent, inputs["body"].encode()) \
        == inputs["application_key"]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_body_reserialised_is_refused(vector):
    inputs = vector["inputs"]
    reserialised = json.dumps(json.loads(inputs["body"]), ensure_ascii=False).encode("utf-8")  # ", " and ": "
    assert reserialised != inputs["body"].encode("utf-8")
    error = refusal(vector_verifier(vector), vector["expected"]["request_headers_as_sent"],
                    path=inputs["path"], body=reserialised)
    assert error.reason == "bad_signature"


NON_ASCII = [v for v in VECTORS if not v["inputs"]["body"].isascii()]


@pytest.mark.parametrize("vector", NON_ASCII, ids=[v["name"] for v in NON_ASCII])
def test_vector_body_with_escaped_non_ascii_is_refused(vector):
    inputs = vector["inputs"]
    escaped = json.dumps(json.loads(inputs["body"]), separators=(",", ":")).encode("ascii")  # \u00e9 escapes
    assert json.loads(escaped) == json.loads(inputs["body"])
    error = refusal(vector_verifier(vector), vector["expected"]["request_headers_as_sent"],
                    path=inputs["path"], body=escaped)
    assert error.reason == "bad_signature"


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
@pytest.mark.parametrize("suffix", ["?a=1", "/", "?"])
def test_vector_path_with_query_or_changed_is_refused(vector, suffix):
    inputs = vector["inputs"]
    error = refusal(vector_verifier(vector), vector["expected"]["request_headers_as_sent"],
                    path=inputs["path"] + suffix, body=inputs["body"].encode())
    assert error.reason == "bad_signature"


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_signed_with_full_url_or_query_is_refused(vector):
    inputs = vector["inputs"]
    body = inputs["body"].encode()
    for signed_path in (inputs["path"] + "?a=1", "https://callbacks.example.com" + inputs["path"]):
        forged = headers(key=inputs["application_key"], secret=inputs["application_secret_b64"], path=signed_path,
                         body=body, timestamp=inputs["x_timestamp"], content_type=inputs["content_type"])
        assert refusal(vector_verifier(vector), forged, path=inputs["path"], body=body).reason == "bad_signature"


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_content_type_changed_is_refused(vector):
    inputs = vector["inputs"]
    original = inputs["content_type"]
    changed = [original.split(";")[0]] if ";" in original else [original + "; charset=utf-8"]
    changed += ["application/json;charset=utf-8", "Application/JSON", "text/plain", ""]
    for content_type in changed:
        if content_type == original:
            continue
        sent = dict(vector["expected"]["request_headers_as_sent"], **{"content-type": content_type})
        error = refusal(vector_verifier(vector), sent, path=inputs["path"], body=inputs["body"].encode())
        assert error.reason == "bad_signature", content_type


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_content_type_missing_is_refused(vector):
    inputs = vector["inputs"]
    sent = {k: v for k, v in vector["expected"]["request_headers_as_sent"].items() if k != "content-type"}
    assert refusal(vector_verifier(vector), sent, path=inputs["path"], body=inputs["body"].encode()).reason \
        == "bad_signature"


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_timestamp_reformatted_is_refused(vector):
    inputs = vector["inputs"]
    when = datetime.fromtimestamp(epoch(inputs["x_timestamp"]), timezone.utc)
    reformatted = {
        when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),   # 2014-09-24T10:59:41.000Z
        when.isoformat(),                                                  # ...+00:00
        when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        when.strftime("%Y-%m-%dT%H:%M:%S"),                                # no zone
    } - {inputs["x_timestamp"]}
    assert len(reformatted) >= 3
    v = vector_verifier(vector)
    for value in reformatted:
        sent = dict(vector["expected"]["request_headers_as_sent"], **{"x-timestamp": value})
        error = refusal(v, sent, path=inputs["path"], body=inputs["body"].encode())
        assert error.reason == "bad_signature", value


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_vector_secret_used_without_base64_decoding_is_refused(vector):
    inputs = vector["inputs"]
    # A verifier whose HMAC key is the secret's *text*: base64 of that text decodes back to it.
    undecoded = base64.b64encode(inputs["application_secret_b64"].encode("ascii")).decode("ascii")
    v = vector_verifier(vector, secret=undecoded)
    error = refusal(v, vector["expected"]["request_headers_as_sent"], path=inputs["path"], body=inputs["body"].encode())
    assert error.reason == "bad_signature"


def test_content_md5_of_an_empty_body_is_empty():
    assert content_md5(b"") == ""
    assert string_to_sign("get", "", "", TS, "/x") == f"GET\n\n\nx-timestamp:{TS}\n/x"
    v = verifier()
    empty = signed_headers(KEY, SECRET, "/x", b"", method="GET", content_type="", timestamp=TS)
    assert v.verify("GET", "/x", empty, b"") == KEY
    assert refusal(v, empty, path="/x", body=b"", method="POST").reason == "bad_signature"


# --------------------------------------------------------------------------- refusals


def test_generated_headers_verify():
    assert verifier().verify("POST", PATH, headers(), BODY) == KEY


def test_missing_authorization():
    hdrs = headers()
    del hdrs["Authorization"]
    assert refusal(verifier(), hdrs).reason == "missing_authorization"
    assert refusal(verifier(), dict(hdrs, Authorization="")).reason == "missing_authorization"
    assert refusal(verifier(), {}).reason == "missing_authorization"


@pytest.mark.parametrize("value", [
    "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode(),
    f"Basic {KEY}:{SECRET}",
    "Bearer eyJhbGciOiJIUzI1NiJ9",
    "Service 7f3c9e21:c2lnbmF0dXJl",
    "Applications {KEY}:c2lnbmF0dXJl",
])
def test_unsupported_scheme(value):
    assert refusal(verifier(), dict(headers(), Authorization=value)).reason == "unsupported_scheme"


def test_malformed_authorization():
    good = headers()["Authorization"]
    scheme, credentials = good.split(" ")
    key, sig = credentials.split(":")
    cases = [
        f"{scheme} {key}{sig}",            # no colon
        f"{scheme}  {credentials}",        # two spaces
        f"{scheme} {credentials} ",        # trailing space
        f" {scheme} {credentials}",        # leading space
        f"{scheme} {key}: {sig}",          # space inside
        f"{scheme}",                       # no credentials
        f"{scheme}:{credentials}",         # no space at all
        f"{scheme} :{sig}",                # empty key
        f"{scheme} {key}:",                # empty signature
        f"{scheme}\t{credentials}",        # tab instead of space
    ]
    for value in cases:
        assert refusal(verifier(), dict(headers(), Authorization=value)).reason == "malformed_authorization", value


def test_signature_is_split_on_the_first_colon():
    # "key:sig:extra": the signature part is "sig:extra", which doesn't match.
    good = headers()["Authorization"]
    assert refusal(verifier(), dict(headers(), Authorization=good + ":extra")).reason == "bad_signature"


def test_unknown_key():
    hdrs = headers(key="00000000-0000-0000-0000-000000000000")
    assert refusal(verifier(), hdrs).reason == "unknown_key"
    # keys are compared exactly (the official SDK is case-sensitive)
    assert refusal(verifier(), headers(key=KEY.upper())).reason == "unknown_key"


def test_missing_timestamp():
    hdrs = headers()
    del hdrs["x-timestamp"]
    assert refusal(verifier(), hdrs).reason == "missing_timestamp"


@pytest.mark.parametrize("value", ["yesterday", "", "1741944413", "2025-03-14", "2025-13-14T09:26:53Z"])
def test_invalid_timestamp_when_correctly_signed(value):
    assert refusal(verifier(), headers(timestamp=value)).reason == "invalid_timestamp"


def test_forged_request_with_invalid_timestamp_is_bad_signature():
    forged = dict(headers(timestamp="yesterday"), **{"x-timestamp": "tomorrow"})
    assert refusal(verifier(), forged).reason == "bad_signature"


def test_window_edges():
    hdrs = headers()
    assert verifier(T0 + WINDOW - 1).verify("POST", PATH, hdrs, BODY) == KEY
    assert verifier(T0 - WINDOW + 1).verify("POST", PATH, hdrs, BODY) == KEY
    assert refusal(verifier(T0 + WINDOW + 1), hdrs).reason == "stale_timestamp"
    assert refusal(verifier(T0 - WINDOW - 1), hdrs).reason == "future_timestamp"


def test_window_uses_the_timestamp_offset():
    # 11:26:53+02:00 is 09:26:53Z: same instant as T0 (to the second)
    hdrs = headers(timestamp="2025-03-14T11:26:53+02:00")
    assert verifier(T0 + WINDOW - 1).verify("POST", PATH, hdrs, BODY) == KEY
    assert refusal(verifier(T0 + WINDOW + 1), hdrs).reason == "stale_timestamp"
    naive = headers(timestamp="2025-03-14T09:26:53.589")  # no zone: UTC
    assert verifier(T0 - WINDOW + 1).verify("POST", PATH, naive, BODY) == KEY
    assert refusal(verifier(T0 - WINDOW - 1), naive).reason == "future_timestamp"


def test_signature_is_checked_before_the_window():
    stale_clock = T0 + WINDOW + 3600
    assert refusal(verifier(stale_clock), headers()).reason == "stale_timestamp"  # a signed replay
    forged = headers(secret=OTHER_SECRET)
    assert refusal(verifier(stale_clock), forged).reason == "bad_signature"
    assert refusal(verifier(T0 - WINDOW - 3600), forged).reason == "bad_signature"


def test_two_secrets_during_rotation():
    v = Verifier({KEY: [SECRET, OTHER_SECRET]}, window_seconds=WINDOW, clock=at(T0))
    assert v.verify("POST", PATH, headers(secret=SECRET), BODY) == KEY
    assert v.verify("POST", PATH, headers(secret=OTHER_SECRET), BODY) == KEY
    third = base64.b64encode(b"not one of the two").decode()
    assert refusal(v, headers(secret=third)).reason == "bad_signature"


def test_several_applications_return_the_matching_key():
    other_key = "c0ffee00-1234-4abc-8def-0123456789ab"
    v = Verifier({KEY: [SECRET], other_key: [OTHER_SECRET]}, window_seconds=WINDOW, clock=at(T0))
    assert v.verify("POST", PATH, headers(key=other_key, secret=OTHER_SECRET), BODY) == other_key
    assert v.verify("POST", PATH, headers(), BODY) == KEY
    # the other application's secret does not sign for this key
    assert refusal(v, headers(key=KEY, secret=OTHER_SECRET)).reason == "bad_signature"


def test_body_and_method_are_signed():
    hdrs = headers()
    assert refusal(verifier(), hdrs, body=BODY + b" ").reason == "bad_signature"
    assert refusal(verifier(), hdrs, body=b"").reason == "bad_signature"
    assert refusal(verifier(), hdrs, method="PUT").reason == "bad_signature"


def test_non_ascii_signature_value_is_bad_signature_not_a_crash():
    good = headers()["Authorization"]
    assert refusal(verifier(), dict(headers(), Authorization=good[:-2] + "é=")).reason == "bad_signature"


def test_repeated_header_first_value_wins():
    good = headers()
    multi = CIMultiDict(good)
    multi.add("Authorization", f"Application {KEY}:AAAA")
    assert verifier().verify("POST", PATH, CIMultiDictProxy(multi), BODY) == KEY


def test_default_timestamp_is_now_utc_and_verifies_with_the_real_clock():
    hdrs = signed_headers(KEY, SECRET, PATH, BODY)
    assert hdrs["x-timestamp"].endswith("Z")
    assert abs(epoch(hdrs["x-timestamp"]) - time.time()) < 5
    assert Verifier({KEY: [SECRET]}, window_seconds=WINDOW).verify("POST", PATH, hdrs, BODY) == KEY


def test_no_refusal_message_contains_a_secret_or_the_expected_signature():
    expected_sig = headers()["Authorization"].split(":", 1)[1]
    raw_secret = base64.b64decode(SECRET).decode("ascii")
    v = Verifier({KEY: [SECRET, OTHER_SECRET]}, window_seconds=WINDOW, clock=at(T0))
    forged_sig = f"Application {KEY}:" + base64.b64encode(b"x" * 32).decode()
    cases = [
        {},
        dict(headers(), Authorization="Basic " + SECRET),
        dict(headers(), Authorization=f"Application {KEY}{expected_sig}"),
        dict(headers(), Authorization=f"Application  {KEY}:{expected_sig}"),
        headers(key="unknown-key"),
        {k: val for k, val in headers().items() if k != "x-timestamp"},
        headers(timestamp="yesterday"),
        dict(headers(), Authorization=forged_sig),
        headers(timestamp="2025-03-14T08:00:00Z"),
        headers(timestamp="2025-03-14T11:00:00Z"),
    ]
    reasons = set()
    for hdrs in cases:
        error = refusal(v, hdrs)
        reasons.add(error.reason)
        for text in (str(error), repr(error), error.message):
            for secret in (SECRET, OTHER_SECRET, raw_secret, expected_sig, expected_sig.rstrip("=")):
                assert secret not in text, (error.reason, text)
    assert reasons == {"missing_authorization", "unsupported_scheme", "malformed_authorization", "unknown_key",
                       "missing_timestamp", "invalid_timestamp", "bad_signature", "stale_timestamp",
                       "future_timestamp"}


# --------------------------------------------------------------------------- construction


def test_invalid_base64_secret_names_the_key_not_the_secret():
    bad = "not base64 at all!"
    with pytest.raises(ValueError) as info:
        Verifier({"app-with-bad-secret": [SECRET, bad]}, window_seconds=WINDOW)
    assert "app-with-bad-secret" in str(info.value)
    assert bad not in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("secrets", [[], [SECRET, OTHER_SECRET, SECRET], [""]])
def test_secret_count_and_empty_secret(secrets):
    with pytest.raises(ValueError, match="app-x"):
        Verifier({"app-x": secrets}, window_seconds=WINDOW)


@pytest.mark.parametrize("window", [0, -1, float("nan"), float("inf")])
def test_window_must_be_positive_and_finite(window):
    with pytest.raises(ValueError):
        Verifier({KEY: [SECRET]}, window_seconds=window)


def test_secret_with_surrounding_whitespace_is_accepted():
    v = Verifier({KEY: [f"  {SECRET}\n"]}, window_seconds=WINDOW, clock=at(T0))
    assert v.verify("POST", PATH, headers(), BODY) == KEY


def test_repr_does_not_show_secrets():
    text = repr(Verifier({KEY: [SECRET]}, window_seconds=WINDOW))
    assert KEY in text and SECRET not in text


def test_signature_helper_rejects_a_non_base64_secret():
    with pytest.raises(ValueError):
        signature("not*base64", "POST\n\n\nx-timestamp:x\n/")
