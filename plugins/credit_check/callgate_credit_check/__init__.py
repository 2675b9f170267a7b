"""callgate-credit-check: prepaid credit for callgate (reserve on ICE, settle on DICE).

Enable it in config.toml::

    [plugins]
    enabled = ["credit_check"]

    [plugins.credit_check]
    database_url = { env = "CREDIT_DATABASE_URL" }   # default: sqlite:///var/callgate/credit.sqlite3

See README.md for every setting and the ``callgate credit`` commands.
"""

from .plugin import CreditCheck

__all__ = ["CreditCheck"]
