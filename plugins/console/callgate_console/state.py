"""What the console's pages share with the plugin, kept on the ops application under :data:`STATE`."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .access import Access
from .config import ConsoleConfig
from .live import LiveFeed
from .masking import Mask, masker
from .recorder import Recorder
from .store import ConsoleStore
from .throttle import Throttle


@dataclass
class ConsoleState:
    config: ConsoleConfig
    access: Access
    recorder: Recorder
    feed: LiveFeed
    #: Set by the plugin's startup (None before it, and after shutdown).
    store: ConsoleStore | None = None
    #: A store that cannot be read fails every page asked for: logged at most every 10 s.
    read_failures: Throttle = field(default_factory=Throttle)

    @property
    def mask(self) -> Mask:
        return masker(self.config.mask_numbers)


STATE = web.AppKey("callgate_console", ConsoleState)
