"""Sinch Voice v1 callbacks (ICE, ACE, PIE, DICE, Notify, answered with ``action``/``instructions`` SVAML).

* :mod:`callgate.protocols.v1.signing` -- the ``Application`` request-signing scheme
  (:class:`~callgate.protocols.v1.signing.Verifier`, ``signed_headers`` for clients and tests).
* :mod:`callgate.protocols.v1.decode` -- a callback body into a neutral call of :mod:`callgate.calls`.
* :mod:`callgate.protocols.v1.render` -- plans and answers (:mod:`callgate.plan`) into v1 SVAML
  (:class:`~callgate.protocols.v1.render.V1Renderer`).

The v1 SVAML model itself is :mod:`callgate.protocols.v1.svaml`.
"""
