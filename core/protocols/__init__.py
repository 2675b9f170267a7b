"""Protocol adapters: one subpackage per Sinch Voice API generation.

Each generation owns its wire format here: how a request is verified (its
signing scheme), how a request body is decoded into typed events, and how an
answer is rendered.  Nothing outside an adapter should need a wire type.

* :mod:`callgate.protocols.v2` -- Voice API v2 service webhooks (``call.incoming``,
  ``call.answered``, ... answered with SVAML v2 ``{"commands": [...]}``), signed
  with the ``service`` scheme.
* :mod:`callgate.protocols.signing_common` -- the HMAC signed-request algorithm both
  generations share (Content-MD5, string to sign, secrets, timestamp window,
  :class:`~callgate.protocols.signing_common.SignatureError`).

* :mod:`callgate.protocols.v1` -- the classic callbacks (ICE, ACE, PIE, DICE, Notify answered
  with ``action``/``instructions`` SVAML, :mod:`callgate.protocols.v1.svaml`), signed with the ``Application``
  scheme.

Each adapter decodes into the neutral calls of :mod:`callgate.calls` and renders the plans of
:mod:`callgate.plan` (its ``Renderer``).
"""
