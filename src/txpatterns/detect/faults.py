"""Named crash points, so that tests can kill the detector exactly where it hurts most."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Protocol


class Crash(Protocol):
    def __call__(self, point: str, before: Callable[[], object] | None = None) -> None: ...


def no_crash(point: str, before: Callable[[], object] | None = None) -> None:
    """The production hook: does nothing."""


def crash_at(spec: str) -> Crash:
    """A hook that SIGKILLs this process at `POINT` or at its N-th passage with `POINT:N`.

    Points: after-stage, after-commit (between a chunk's commit and any output write),
    after-file-recorded, mid-file (half a part written), before-file-complete.
    """
    name, _, nth = spec.partition(":")
    remaining = int(nth or "1")

    def hook(point: str, before: Callable[[], object] | None = None) -> None:
        nonlocal remaining
        if point != name:
            return
        remaining -= 1
        if remaining > 0:
            return
        if before is not None:
            before()
        os.kill(os.getpid(), signal.SIGKILL)

    return hook
