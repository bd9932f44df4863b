"""A small synchronous event hub: how one API family reacts to another.

    sim.events.on("vip_changed", handler)          # handler(old=..., new=...)
    sim.events.emit("vip_changed", old=None, new="10.0.20.10")

Families never wrap each other's methods or chain closures; they publish what happened and
subscribe to what they care about. Handlers run in subscription order, on the emitting thread,
with keyword arguments only. The events in use (keep this list current):

============== ===================== ===========================================================
event          emitted by            keyword arguments
============== ===================== ===========================================================
deployed       deployment            ``op`` (DeployOperation), ``state`` ("success" | "failed")
vip_changed    fisheye               ``old``, ``new`` (addresses or None)
vm_address     vms                   ``vm``, ``old`` (address or None), ``new`` (address)
tower_ready    cloudtower_install    ``ip``, ``setup`` (dict or None), ``warmup`` (sim seconds)
============== ===================== ===========================================================
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any, Callable

log = logging.getLogger("mocks")

Handler = Callable[..., Any]


class Events:
    """Named events with synchronous handlers."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._lock = threading.Lock()

    def on(self, name: str, handler: Handler) -> Handler:
        """Subscribe ``handler`` to ``name`` (idempotent for the same handler); returns it."""
        with self._lock:
            if handler not in self._handlers[name]:
                self._handlers[name].append(handler)
        return handler

    def off(self, name: str, handler: Handler) -> None:
        with self._lock:
            if handler in self._handlers.get(name, ()):
                self._handlers[name].remove(handler)

    def emit(self, name: str, **kwargs: Any) -> None:
        """Call every handler of ``name`` with ``kwargs``. A failing handler is logged and the
        others still run: one family's bug must not silently stop another's reaction."""
        with self._lock:
            handlers = list(self._handlers.get(name, ()))
        for h in handlers:
            try:
                h(**kwargs)
            except Exception:          # noqa: BLE001 - see docstring
                log.exception("sim event %s: handler %r failed", name, h)

    def handlers(self, name: str) -> list[Handler]:
        with self._lock:
            return list(self._handlers.get(name, ()))
