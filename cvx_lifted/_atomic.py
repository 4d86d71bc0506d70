# SPDX-License-Identifier: Apache-2.0
"""Temporary files of atomic saves.

They are removed on exceptions, at exit, on SIGTERM/SIGHUP, and when a killed process left them
behind (used by :func:`cvx_lifted.modelfile.save_network`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "PENDING",
    "PENDING_LOCK",
    "cleanup_on_signals",
    "fsync_folder",
    "remove_stale_temporaries",
]

PENDING: set[str] = set()  # temporary files being written by this process
PENDING_LOCK = threading.Lock()


def _remove_pending() -> None:
    """Remove the temporary files of saves still in progress (atexit and signal handlers)."""
    for name in list(PENDING):
        with contextlib.suppress(OSError):
            os.unlink(name)
        PENDING.discard(name)


atexit.register(_remove_pending)

_CLEANUP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _terminate_after_cleanup(signum: int, frame: Any) -> None:  # pragma: no cover - subprocess
    """Remove pending temporary files, then die of the signal as if no handler was installed."""
    _remove_pending()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """While saving, make SIGTERM/SIGHUP remove the temporary file before terminating.

    Only signals whose handler is the default (terminate) are taken over, and only in the main
    thread (where Python runs signal handlers); the previous handlers are restored afterwards.
    """
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _CLEANUP_SIGNALS:
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signum) == signal.SIG_DFL:
                    previous[signum] = signal.signal(signum, _terminate_after_cleanup)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, handler)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but not ours, or not a pid: leave its files alone
    return True


def remove_stale_temporaries(target: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` files left next to ``target`` by processes that are gone."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[^/]*\.tmp\Z")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)


def fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
