"""Simulated time: :class:`SimClock` (scaled clock; long operations progress when read) and
:func:`timed_phase` (where an operation that runs in simulated time stands)."""
from __future__ import annotations

import datetime as _dt
import threading
import time

__all__ = ["SimClock", "timed_phase"]


def timed_phase(now: float, created: float, pending_s: float, running_s: float, fault: str | None) -> str:
    """Where an operation that progresses in simulated time stands: ``pending``, ``running``, then
    ``done`` -- or ``failed`` (fault ``fail``), or ``running`` forever (fault ``stuck``). Each API family
    maps these to its own words (fisheye jobs: pending/running/done/failed; CloudTower tasks:
    PENDING/EXECUTING/SUCCESSED/FAILED)."""
    elapsed = now - created
    if elapsed < pending_s:
        return "pending"
    if fault == "stuck" or elapsed < pending_s + running_s:
        return "running"
    return "failed" if fault == "fail" else "done"


class SimClock:
    """Scaled simulation clock.

    ``time_scale`` is *real seconds per simulated second*: ``1.0`` is realistic
    pacing, ``0.01`` runs 100x faster (a 15-minute operation takes 9 s),
    ``0.001`` 1000x faster. ``now()`` is simulated seconds since the clock was
    created, plus any manual :meth:`advance`.

    ``wall()`` is what the simulated world reports as *current time* (NTP replies,
    timestamps): real UTC plus ``skew`` seconds. It is deliberately not scaled, so
    a fast simulation does not look like a drifting time server; set ``skew`` to
    simulate a wrong clock.
    """

    def __init__(self, time_scale: float = 0.01):
        self._lock = threading.Lock()
        self._check(time_scale)
        self._scale = float(time_scale)
        self._t0 = time.monotonic()
        self._base = 0.0          # simulated seconds accumulated before _t0
        self.skew = 0.0
        self.anchor = time.time()    # sim_wall(): the UNIX time simulated second 0 stands for

    @staticmethod
    def _check(scale: float) -> None:
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"time_scale must be a positive number, got {scale!r}")

    @property
    def time_scale(self) -> float:
        return self._scale

    @time_scale.setter
    def time_scale(self, scale: float) -> None:
        """Change pacing without a jump in ``now()``."""
        self._check(scale)
        with self._lock:
            now = time.monotonic()
            self._base += (now - self._t0) / self._scale
            self._t0 = now
            self._scale = float(scale)

    def now(self) -> float:
        """Simulated seconds since start."""
        with self._lock:
            return self._base + (time.monotonic() - self._t0) / self._scale

    def advance(self, seconds: float) -> float:
        """Jump simulated time forward (tests: finish a long operation instantly)."""
        if seconds < 0:
            raise ValueError("the simulated clock never goes backwards")
        with self._lock:
            self._base += seconds
        return self.now()

    def restore(self, sim_now: float, skew: float | None = None, *, anchor: float | None = None) -> float:
        """Set ``now()`` to ``sim_now`` (restoring a snapshot; the only way to move the clock
        other than forward). Pacing continues from there at the current ``time_scale``."""
        if not isinstance(sim_now, (int, float)) or sim_now < 0:
            raise ValueError(f"simulated time must be a number >= 0, got {sim_now!r}")
        with self._lock:
            self._t0 = time.monotonic()
            self._base = float(sim_now)
            if skew is not None:
                self.skew = float(skew)
            if anchor is not None:
                self.anchor = float(anchor)
        return self.now()

    def real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds * self._scale

    def sleep(self, sim_seconds: float) -> None:
        time.sleep(max(0.0, self.real(sim_seconds)))

    def wall(self) -> float:
        """Simulated 'current time' as a UNIX timestamp (real time + skew)."""
        return time.time() + self.skew

    def sim_wall(self, sim_t: float | None = None) -> float:
        """The simulated timeline as UNIX seconds: the clock's start plus simulated seconds (``now()`` when
        ``sim_t`` is None). Unlike :meth:`wall` it runs at the simulated pace, so what happens inside the world
        lines up: a guest's ``date`` and fio's timestamps, VM metric points, migrations (stages 09-10)."""
        return self.anchor + self.skew + (self.now() if sim_t is None else float(sim_t))

    def utcnow(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.wall(), tz=_dt.timezone.utc)

    def to_dict(self) -> dict:
        return {"time_scale": self._scale, "sim_now": round(self.now(), 3), "skew": self.skew,
                "wall": self.utcnow().isoformat()}
