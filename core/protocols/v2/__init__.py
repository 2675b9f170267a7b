"""Sinch Voice API v2 service webhooks.

So far: :mod:`callgate.protocols.v2.signing` (the ``service`` request-signing scheme),
:mod:`callgate.protocols.v2.wire` (events and SVAML v2 answers as msgspec Structs) and
:mod:`callgate.protocols.v2.decode` (a webhook body into a typed event, with v1's refusal codes).
Nothing serves v2 requests yet: the neutral core and the webhook path come next.
"""
