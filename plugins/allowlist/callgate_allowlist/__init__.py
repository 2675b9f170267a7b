"""callgate-allowlist: allow and deny lists for callgate.

Enable it in config.toml with ``enabled = ["allowlist", ...]`` and a
``[plugins.allowlist]`` table (see the README for every key).
"""

from .plugin import Allowlist

__all__ = ["Allowlist"]
