"""Stop signals, portably: the one place that installs and restores handlers for the signals a platform has
(SIGTERM, SIGHUP, SIGINT; SIGBREAK on Windows). Used by the acceptance run and by ``python -m mocks serve``."""
from __future__ import annotations

import signal
from typing import Callable, Iterable

Handler = Callable[[int, object], None]


def install(names: Iterable[str], handler: Handler) -> dict:
    """Set ``handler`` for every named signal this platform has; returns the previous handlers for
    :func:`restore`. Signals that cannot be set here (not the main thread) are left alone."""
    previous = {}
    for name in names:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    return previous


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError, TypeError):
            pass
