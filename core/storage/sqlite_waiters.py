"""Which processes wait for a SQLite file's write lock: a hint that makes them take turns.

SQLite's own wait for the write lock (``busy_timeout``) polls with growing sleeps, up to 100 ms
between tries, while a process that writes all the time (group commit under load) takes the lock
back within microseconds of each COMMIT.  Two ``callgate serve`` workers on one file thus starved
each other: one worker's transactions waited past the plugins' 1 s timeout (issue 17).

So a process that finds the write lock taken says so: it holds a shared lock on one byte of a side
file, ``<database>-waiters``, while it polls for the write lock; and a process that is about to
begin a transaction and sees a waiter lets it go first (:class:`~callgate.storage.SQLiteDatabase`
waits, on its database thread, until nobody waits any more, for a few milliseconds at most).

Only a hint: correctness rests on SQLite's lock alone.  The locks are POSIX record locks, so they
belong to the process (two connections of one process to one file share them, and a probe by one
can drop the other's; it only costs fairness) and the kernel drops them when a process dies.  Where
``fcntl`` does not exist (Windows) or the side file cannot be created, nobody is told, and waiting
is polling alone.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:          # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The byte of the side file a waiting process holds a shared lock on.
_WAITING_BYTE = 0


class WriteWaiters:
    """The side file of one SQLite database, open for as long as the database is."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def beside(cls, database_path: str) -> WriteWaiters:
        """The hint for the database file at ``database_path`` (none for ``:memory:``)."""
        if fcntl is None or database_path == ":memory:":
            return cls(None)
        try:
            return cls(os.open(f"{database_path}-waiters", os.O_RDWR | os.O_CREAT, 0o666))
        except OSError:
            return cls(None)

    def anyone(self) -> bool:
        """Another process waits for the write lock.  Never waits: one non-blocking probe."""
        if self._fd is None:
            return False
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _WAITING_BYTE)
        except OSError:
            return True
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _WAITING_BYTE)
        return False

    def announce(self) -> None:
        """This process waits for the write lock (until :meth:`withdraw`)."""
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_SH, 1, _WAITING_BYTE)    # waits only for another's probe

    def withdraw(self) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _WAITING_BYTE)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
