"""Sinch Voice API v2 service webhooks.

So far: :mod:`callgate.protocols.v2.signing`, the ``service`` request-signing scheme.
The event decoder and the SVAML v2 renderer come later; nothing serves v2 requests yet.
"""
