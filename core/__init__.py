"""callgate: a plugin-based callback server for the Sinch Voice platform.

Plugin authors need only this module: ``hookimpl`` to mark hook
implementations, the result types hooks return, and the errors that refuse a
configuration (``PluginError``: a plugin cannot be loaded or configured;
``ConfigError``: the rest of config.toml is wrong).  The contract is in
``callgate.hookspecs``; SVAML instructions and actions are in ``callgate.svaml``.
"""

from .config import ConfigError
from .hookspecs import hookimpl
from .manager import PluginError
from .results import Allow, CallerId, Decision, Deny, Outcome, Route
from .svaml import Svaml

__version__ = "0.2.0"
__all__ = [
           "Allow",
           "CallerId",
           "ConfigError",
           "Decision",
           "Deny",
           "Outcome",
           "PluginError",
           "Route",
           "Svaml",
           "__version__",
           "hookimpl",
]
