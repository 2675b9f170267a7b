"""The JSON-lines file: one record per line, appended, for users who import in bulk.

Each line is the record exactly as the webhook would send it.  A record updated later (a
recording location) is appended again with a higher ``version``: importers keep, per ``callid``,
the line with the highest version.  A crash between writing a line and marking it delivered
writes that line again after the restart (same callid and version): import idempotently.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from ..config import FileSink
from ..outbox import Claim
from ..retry import AttemptResult


class FileSender:
    def __init__(self, config: FileSink) -> None:
        self.config = config
        self._lock = asyncio.Lock()

    def path_for(self, claim: Claim) -> Path:
        ended = str(json.loads(claim.record_json).get("ended_at") or "")[:10]
        return Path(self.config.path.replace("{date}", ended or "undated"))

    async def send(self, claim: Claim) -> AttemptResult:
        path = self.path_for(claim)
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, path, claim.record_json)
            except OSError as exc:
                return AttemptResult("retry", None, f"cannot append to {path}: {exc.strerror or exc}")
        return AttemptResult.delivered()

    def _append(self, path: Path, line: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as file:
            # A line cut short by a crash is ended first, so the next record starts on its own line.
            if file.tell() > 0:
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":
                    file.write(b"\n")
            file.write(line.encode() + b"\n")
            file.flush()
            if self.config.fsync:
                os.fsync(file.fileno())

    async def close(self) -> None:
        """Nothing stays open between records."""
