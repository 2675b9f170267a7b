"""The words rules may use for a call's ``to.type``, ``domain`` and ``originationType``.

They are the neutral call's words (:mod:`callgate.calls`), the same for both API generations where
the two agree: v1 sends ``did``/``number``/``username``/``sip``/``conference``, ``pstn``/``mxp``;
a v2 inbound PHONE call is ``did`` (``number`` for a dialled leg), a SIP call ``sip``, and v2 adds
``stream``/``voice_relay`` callees and ``sip``/``server`` originations.
"""

from __future__ import annotations

#: ``to.type`` (v1 ``to.type``; v2 ``call.to`` type as the neutral call names it).
CALLEE_TYPES = frozenset({"did", "number", "username", "sip", "conference", "stream", "voice_relay"})
#: ``domain`` (v1 ``domain``; v2 calls name the same kinds of endpoint).
DOMAINS = frozenset({"pstn", "mxp", "conference", "sip"})
#: ``originationType`` (v1 ``pstn``/``mxp``; v2 ``PHONE``/``SIP``/``SERVER`` as ``pstn``/``sip``/``server``).
ORIGINATION_TYPES = frozenset({"pstn", "mxp", "sip", "server"})
