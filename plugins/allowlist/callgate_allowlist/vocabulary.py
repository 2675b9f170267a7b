"""The words rules may use for a call's ``to.type``, ``domain`` and ``originationType``.

They are the neutral call's words (:mod:`callgate.calls`), the same for both API generations where
the two agree: v1 sends ``did``/``number``/``username``/``sip``/``conference``, ``pstn``/``mxp``;
a v2 inbound PHONE call is ``did`` (``number`` for a dialled leg), a SIP call ``sip``, and v2 adds
``stream``/``voice_relay`` callees and domains, and ``sip``/``server`` originations.
"""

from __future__ import annotations

#: ``to.type`` (v1 ``to.type``; v2 ``call.to`` type as the neutral call names it).
CALLEE_TYPES = frozenset({"did", "number", "username", "sip", "conference", "stream", "voice_relay"})
#: ``domain`` (v1 ``domain``; v2 ``callType``: ``PHONE`` is ``pstn``, ``SIP`` ``sip``, ``STREAM`` ``stream``,
#: ``VOICE_RELAY`` ``voice_relay``).
DOMAINS = frozenset({"pstn", "mxp", "conference", "sip", "stream", "voice_relay"})
#: ``originationType`` (v1 ``pstn``/``mxp``; v2 ``PHONE``/``SIP``/``SERVER`` as ``pstn``/``sip``/``server``).
ORIGINATION_TYPES = frozenset({"pstn", "mxp", "sip", "server"})
