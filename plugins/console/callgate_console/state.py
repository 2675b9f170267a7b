"""What the console's pages share with the plugin, kept on the ops application under :data:`STATE`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .access import Access
from .config import ConsoleConfig
from .live import LiveFeed
from .masking import Mask, masker
from .recorder import Recorder
from .store import ConsoleStore


@dataclass
class ConsoleState:
    config: ConsoleConfig
    access: Access
    recorder: Recorder
    feed: LiveFeed
    #: Set by the plugin's startup (None before it, and after shutdown).
    store: ConsoleStore | None = None

    @property
    def mask(self) -> Mask:
        return masker(self.config.mask_numbers)


STATE = web.AppKey("callgate_console", ConsoleState)
