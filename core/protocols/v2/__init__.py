"""Sinch Voice API v2 service webhooks.

* :mod:`callgate.protocols.v2.signing`: the ``service`` request-signing scheme (:class:`ServiceVerifier`).
* :mod:`callgate.protocols.v2.wire`: events and SVAML v2 answers as msgspec Structs (every class ``V2...``).
* :mod:`callgate.protocols.v2.decode`: a webhook body into a typed wire event, with v1's refusal codes.
* :mod:`callgate.protocols.v2.adapt`: a webhook body into the neutral call plugins see
  (:func:`~callgate.protocols.v2.adapt.decode_event`).
* :mod:`callgate.protocols.v2.render`: neutral plans and answers as SVAML v2
  (:class:`~callgate.protocols.v2.render.V2Renderer`).

The webhook path that serves v2 requests with these is wired in the HTTP handler.
"""
