"""callgate-crm-export: every finished call exported to CRMs (webhook, HubSpot, JSON lines), never lost.

Enable it in config.toml (after credit_check, whose cost it copies into the record)::

    [plugins]
    enabled = ["credit_check", "crm_export"]

    [plugins.crm_export]
    database_url = "sqlite:///var/callgate/crm.sqlite3"

    [[plugins.crm_export.sinks]]
    name = "hubspot"
    type = "hubspot"
    token = { env = "HUBSPOT_TOKEN" }

The record schema is :class:`callgate_crm_export.record.CallRecord` (``call-record.schema.json``);
a webhook receiver verifies requests with :func:`callgate_crm_export.signature.verify`.
"""

from .plugin import CrmExport
from .record import CallRecord
from .signature import SignatureMismatch, sign, verify

__version__ = "0.4.0"
__all__ = ["CallRecord", "CrmExport", "SignatureMismatch", "__version__", "sign", "verify"]
