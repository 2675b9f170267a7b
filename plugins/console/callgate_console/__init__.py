"""callgate-console: an operator console on callgate's ops port.

Every signed callback (both Voice API generations) is recorded off the answer path, with its
request, answer, decision and plugin trace, and shown live, per call, searchable and charted.
See the README for installing, enabling and configuring it.
"""

from .plugin import Console

__all__ = ["Console"]
