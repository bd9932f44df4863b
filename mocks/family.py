"""The one shape every simulated API family has (moto's backends are the model).

A family owns a model (its state), the HTTP apps that serve that state, and the reactions it
has to other families' events. :class:`mocks.server.Simulator` holds one explicit, ordered
list of family classes; it constructs each with the simulator, calls :meth:`Family.attach`
once the world is seeded, settles them in order, and saves/restores them by ``name``.

    class VmsFamily(Family):
        name = "vms"

        def __init__(self, sim):
            super().__init__(sim)
            self.model = VmsModel(sim.clock, ...)
            self.app = VmsApp(self.model)

        def apps_for(self, role, port):          # which endpoints serve this family's routes
            return [self.app] if role in ("host-mgmt", "vip") and port in (80, 443) else []

        def attach(self):                        # subscribe to other families' events
            self.sim.events.on("vip_changed", ...)

Rules:

* a family talks to another only through ``sim.events`` (see :mod:`mocks.events`) or by reading
  the other family's *model* through ``sim.family(name).model``; never by replacing its methods;
* ``settle()`` applies the effects of long operations that ended by now; the simulator calls
  every family's ``settle()`` in list order before each request it dispatches and on ``advance``;
* ``export_state()`` returns JSON-able data without passwords or tokens in clear;
  ``import_state(data)`` restores it over the freshly seeded world and returns notes on what
  could not be restored;
* ``to_dict()`` is for inspection (``/_sim/state``); it may hold more than ``export_state``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:              # pragma: no cover
    from .http import App
    from .server import Simulator


class Family:
    """Base class of a simulated API family. Subclasses set ``name`` and ``self.model``."""

    name: str = ""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.model: Any = None

    # ---- wiring
    def apps_for(self, role: str, port: int) -> list[App]:
        """The apps this family serves on a simulated endpoint of ``role`` (the seed's address
        roles: ``host-mgmt``, ``vip``, ``cloudtower``, ...) and ``port``. Default: none."""
        return []

    def attach(self) -> None:
        """Called once, after every family is constructed and the world seeded: subscribe to
        events, create the family's own endpoints (e.g. SSH on the hosts)."""

    # ---- time
    def settle(self) -> None:
        fn = getattr(self.model, "settle", None)
        if callable(fn):
            fn()

    # ---- snapshots
    def export_state(self) -> dict:
        fn = getattr(self.model, "export_state", None)
        return fn() if callable(fn) else {}

    def import_state(self, data: dict) -> list[str]:
        fn = getattr(self.model, "import_state", None)
        return list((fn(data) if callable(fn) else None) or [])

    def to_dict(self) -> dict:
        fn = getattr(self.model, "to_dict", None)
        return fn() if callable(fn) else {}
