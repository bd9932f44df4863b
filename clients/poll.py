"""The one poll loop: wait until a condition holds, printing progress about every 10 s."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .addressing import CURRENT_STEP

T = TypeVar("T")


@dataclass
class Pacing:
    """Guide intervals and limits are in real seconds; in simulation they are scaled by ``scale``."""

    scale: float = 1.0
    progress_every: float = 10.0          # wall-clock seconds between progress lines
    echo: Callable[[str], None] = print

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)


class WaitTimeout(AssertionError):
    pass


def wait_for(fetch: Callable[[], T], done: Callable[[T], bool], *, what: str, interval: float, limit: float,
             pacing: Pacing, describe: Callable[[T], str] = str,
             hint: str = "") -> T:
    """Call ``fetch`` every ``interval`` (guide seconds) until ``done(value)``; fail after ``limit`` guide seconds."""
    start = time.monotonic()
    last_print = start
    scaled_limit = limit * pacing.scale
    while True:
        value = fetch()
        if done(value):
            return value
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= scaled_limit:
            raise WaitTimeout(
                f"等待超时 / timed out: {what} — 已等待 {elapsed / pacing.scale:.0f}s，上限 {limit:.0f}s；"
                f"最后状态 / last state: {describe(value)}" + (f"\n下一步 / next: {hint}" if hint else ""))
        if now - last_print >= pacing.progress_every:
            last_print = now
            pacing.echo(f"[{CURRENT_STEP.get()}] {what}: {describe(value)} — 已用 / elapsed "
                        f"{elapsed / pacing.scale:.0f}s / 上限 limit {limit:.0f}s")
        pacing.sleep(interval)
