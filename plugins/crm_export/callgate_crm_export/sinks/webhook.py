"""The generic webhook: the record as JSON, HMAC-signed, with the idempotency key.

Request::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <callid>            (<callid>:v<n> for version n > 1 of the record)
    X-Callgate-Callid: <callid>
    X-Callgate-Record-Version: <n>
    X-Callgate-Timestamp / X-Callgate-Signature   (see callgate_crm_export.signature)

    <the call record, exactly as stored>

Any 2xx means received.  408, 425, 429 and 5xx are retried (Retry-After honoured); any other
status puts the record in the dead-letter state at once.  A receiver that sees an
Idempotency-Key again should answer 2xx without storing it twice.
"""

from __future__ import annotations

import aiohttp

from ..config import WebhookSink
from ..outbox import Claim
from ..retry import AttemptResult
from ..signature import sign
from .base import http_request

USER_AGENT = "callgate-crm-export/1"


class WebhookSender:
    def __init__(self, config: WebhookSink, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session

    def headers(self, claim: Claim, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        headers = {name: value.get_secret_value() for name, value in self.config.headers.items()}
        headers.update({
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": claim.idempotency_key,
            "X-Callgate-Callid": claim.callid,
            "X-Callgate-Record-Version": str(claim.version),
        })
        headers.update(sign(self.config.secret.get_secret_value(), body, timestamp))
        return headers

    async def send(self, claim: Claim) -> AttemptResult:
        body = claim.record_json.encode()
        result, _ = await http_request(self.session, "POST", self.config.url, body=body,
                                       headers=self.headers(claim, body), timeout=self.config.timeout_seconds)
        return result

    async def close(self) -> None:
        """The session belongs to the plugin."""
