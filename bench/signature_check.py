"""The signature check alone, in-process: microseconds (timeit) and instructions (callgrind) per verify.

Times ``Verifier.verify`` (v1, ``Application``) and ``ServiceVerifier.verify`` (v2, ``service``)
on valid requests: an ICE from :mod:`callgate.samples` signed by the v1 signer (the benchmark's
millisecond ``x-timestamp`` and Sinch's seven fractional digits), a ``call.incoming`` from
:mod:`callgate.v2_samples` signed by the v2 signer, headers as aiohttp hands them over (a
``CIMultiDictProxy`` with the usual others).  ``reference`` is the benchmark's reference server's
own plain check (``bench/reference_server.py``'s ``SignatureCheck``) on the v1 request; ``floor``
is the least a hand-written check does (one ``hmac.digest``, ``compare_digest``,
``fromisoformat``) for scale.

    .venv/bin/python bench/signature_check.py                # timeit, best of 7
    .venv/bin/python bench/signature_check.py --callgrind    # instructions per check (needs valgrind)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy
from reference_server import SignatureCheck  # bench/reference_server.py

from callgate import samples, v2_samples
from callgate.protocols.v1.signing import Verifier, signed_headers
from callgate.protocols.v2.signing import ServiceVerifier, service_signed_headers

SECRET = base64.b64encode(b"bench-secret-0123456789abcdefghij").decode()
V1_PATH = "/sinch/callback"
V2_PATH = "/sinch/voice/v2/events"


def _request_headers(signed: dict[str, str], body: bytes) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({"Host": "127.0.0.1:8080", "User-Agent": "Sinch/1.0",
                                         "Content-Length": str(len(body)), "Accept": "*/*", **signed}))


def _seven_digits() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "4Z"


def floor_check(secret_b64: str) -> Callable[[str, str, CIMultiDictProxy[str], bytes], str]:
    """The least a v1 check does: split, one HMAC, compare, parse the timestamp, window."""
    key_bytes = base64.b64decode(secret_b64)

    def verify(method: str, path: str, headers: CIMultiDictProxy[str], body: bytes) -> str:
        key, _, sig = headers["authorization"].partition(" ")[2].partition(":")
        ts = headers["x-timestamp"]
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        sts = f"{method}\n{md5}\n{headers.get('content-type', '')}\nx-timestamp:{ts}\n{path}".encode()
        if not hmac.compare_digest(base64.b64encode(hmac.digest(key_bytes, sts, "sha256")), sig.encode()):
            raise ValueError("bad_signature")
        if abs(time.time() - datetime.fromisoformat(ts).timestamp()) > 600:
            raise ValueError("stale")
        return key
    return verify


def reference_check(secret_b64: str) -> Callable[[str, str, CIMultiDictProxy[str], bytes], str]:
    """The reference server's check, called as a verifier."""
    check = SignatureCheck("Application", samples.APPLICATION_KEY, secret_b64, V1_PATH, 600)

    def verify(method: str, path: str, headers: CIMultiDictProxy[str], body: bytes) -> str:
        refused = check(headers, body)
        if refused is not None:
            raise ValueError(refused)
        return samples.APPLICATION_KEY
    return verify


def cases() -> dict[str, tuple[Callable[..., str], tuple[str, str, CIMultiDictProxy[str], bytes]]]:
    """name -> (verify, its arguments), every one a valid request."""
    v1 = Verifier({samples.APPLICATION_KEY: [SECRET]}, window_seconds=600)
    v2 = ServiceVerifier({v2_samples.SERVICE_ID: [SECRET]}, window_seconds=600)
    ice = json.dumps(samples.ice(), separators=(",", ":")).encode()
    incoming = json.dumps(v2_samples.incoming(), separators=(",", ":")).encode()
    v1_ms = _request_headers(signed_headers(samples.APPLICATION_KEY, SECRET, V1_PATH, ice), ice)
    v1_7 = _request_headers(signed_headers(samples.APPLICATION_KEY, SECRET, V1_PATH, ice, timestamp=_seven_digits()),
                            ice)
    v2_7 = _request_headers(service_signed_headers(v2_samples.SERVICE_ID, SECRET, V2_PATH, incoming,
                                                   content_type="application/json; charset=utf-8",
                                                   timestamp=_seven_digits()), incoming)
    return {
        "v1 (ms x-timestamp)": (v1.verify, ("POST", V1_PATH, v1_ms, ice)),
        "v1 (7 fractional digits)": (v1.verify, ("POST", V1_PATH, v1_7, ice)),
        "v2 (7 fractional digits)": (v2.verify, ("POST", V2_PATH, v2_7, incoming)),
        "reference server's check (v1, ms)": (reference_check(SECRET), ("POST", V1_PATH, v1_ms, ice)),
        "floor (hand-written v1 check)": (floor_check(SECRET), ("POST", V1_PATH, v1_ms, ice)),
    }


def run_timeit(number: int, repeat: int) -> None:
    for name, (verify, args) in cases().items():
        verify(*args)   # valid, or this raises
        best = min(timeit.repeat("verify(*args)", number=number, repeat=repeat,
                                 globals={"verify": verify, "args": args})) / number
        print(f"{name:45} {best * 1e6:6.2f} us")


def _loop(name: str, count: int) -> None:
    verify, args = cases()[name]
    for _ in range(count):
        verify(*args)


def _callgrind_total(count: int, name: str, out: Path) -> int:
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                    "--loop", name, "--count", str(count)], check=True, capture_output=True)
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no total in {out}")


def run_callgrind(count: int, tmp: Path) -> None:
    """Instructions of ``count`` checks minus those of none (start-up), divided by ``count``."""
    for i, name in enumerate(cases()):
        base = _callgrind_total(0, name, tmp / f"cg-{i}-0.out")
        loaded = _callgrind_total(count, name, tmp / f"cg-{i}-n.out")
        print(f"{name:45} {(loaded - base) / count:8.0f} instructions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead of timing")
    parser.add_argument("--number", type=int, default=20000, help="checks per timeit run")
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs (the best is shown)")
    parser.add_argument("--count", type=int, default=2000, help="checks per callgrind run")
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop is not None:
        _loop(args.loop, args.count)
    elif args.callgrind:
        with tempfile.TemporaryDirectory() as tmp:
            run_callgrind(args.count, Path(tmp))
    else:
        run_timeit(args.number, args.repeat)


if __name__ == "__main__":
    main()
