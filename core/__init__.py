"""callgate: a plugin-based callback server for the Sinch Voice platform.

Plugin authors need only this module: ``hookimpl`` to mark hook
implementations, the decisions hooks return (:mod:`callgate.decisions`:
``Allow``, ``Deny``, ``Route`` and its targets, ``CallerId``, ``Proceed``,
``EndCall``, ``Prompt``), and the errors that refuse a configuration
(``PluginError``: a plugin cannot be loaded or configured; ``ConfigError``: the
rest of config.toml is wrong).  The calls hooks receive are in
:mod:`callgate.calls`; the contract is in ``callgate.hookspecs``.  ``Exchange`` is what
``callback_answered`` receives (a callback, its answer and why).  ``leave_note`` and
``wait_for_note`` pass a note between recording hooks, which run at the same time (:mod:`callgate.notes`).  ``Svaml`` is
v1 SVAML (:mod:`callgate.protocols.v1.svaml`), for answers that have no neutral form.
"""

from .config import ConfigError
from .decisions import (
    Allow,
    CallerId,
    Conference,
    Deny,
    DigitMenu,
    EndCall,
    InAppUser,
    PhoneNumber,
    Proceed,
    Prompt,
    Route,
    SipEndpoint,
    SvamlRoute,
)
from .exchange import Exchange
from .hookspecs import hookimpl
from .manager import PluginError
from .notes import leave_note, wait_for_note
from .protocols.v1.svaml import Svaml
from .results import Decision, Outcome

__version__ = "0.4.0"
__all__ = [
           "Allow",
           "CallerId",
           "Conference",
           "ConfigError",
           "Decision",
           "Deny",
           "DigitMenu",
           "EndCall",
           "Exchange",
           "InAppUser",
           "Outcome",
           "PhoneNumber",
           "PluginError",
           "Proceed",
           "Prompt",
           "Route",
           "SipEndpoint",
           "Svaml",
           "SvamlRoute",
           "__version__",
           "hookimpl",
           "leave_note",
           "wait_for_note",
]
