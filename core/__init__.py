"""callgate: a plugin-based callback server for the Sinch Voice platform.

Plugin authors need only this module: ``hookimpl`` to mark hook
implementations, and the result types hooks return.  The contract is in
``callgate.hookspecs``; SVAML instructions and actions are in ``callgate.svaml``.
"""

from .hookspecs import hookimpl
from .results import Allow, CallerId, Decision, Deny, Outcome, Route
from .svaml import Svaml

__version__ = "0.1.0"
__all__ = ["hookimpl", "Allow", "Deny", "Route", "CallerId", "Decision", "Outcome", "Svaml", "__version__"]
