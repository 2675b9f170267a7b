"""Sinch Voice v1 callbacks (ICE, ACE, PIE, DICE, Notify, answered with ``action``/``instructions`` SVAML).

* :mod:`callgate.protocols.v1.signing` -- the ``Application`` request-signing scheme
  (:class:`~callgate.protocols.v1.signing.Verifier`, ``signed_headers`` for clients and tests).
* :mod:`callgate.protocols.v1.decode` -- a callback body into a neutral call of :mod:`callgate.calls`, through
  the msgspec Structs of :mod:`callgate.protocols.v1.wire`; :mod:`callgate.protocols.v1.refusals` reads a
  body those refuse again, for v1's leniencies and its exact error messages.
* :mod:`callgate.protocols.v1.render` -- plans and answers (:mod:`callgate.plan`) into v1 SVAML
  (:class:`~callgate.protocols.v1.render.V1Renderer`).

The v1 SVAML model itself is :mod:`callgate.protocols.v1.svaml`.
"""
