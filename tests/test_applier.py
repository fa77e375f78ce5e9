"""The applier thread: batches applied in order, one waiting at most, errors reported once."""

from __future__ import annotations

import threading

import pytest

from txpatterns.detect.runner import Applier, DetectError
from txpatterns.errors import StoreError


def test_work_runs_in_order_and_drain_waits_for_all_of_it() -> None:
    applier = Applier()
    done: list[int] = []
    gate = threading.Event()
    applier.put(lambda: (gate.wait(5), done.append(0)))
    applier.put(lambda: done.append(1))
    # A third batch waits while the second one is queued behind the first.
    third = threading.Thread(target=applier.put, args=(lambda: done.append(2),))
    third.start()
    third.join(0.2)
    assert third.is_alive() and done == []
    gate.set()
    third.join(5)
    applier.drain()
    assert done == [0, 1, 2]
    applier.stop()


def test_our_errors_keep_their_message_and_stop_later_work() -> None:
    applier = Applier()
    done: list[int] = []

    def fail() -> None:
        raise StoreError("s3://bucket/out: the bucket does not exist; create it first")

    applier.put(fail)
    applier.put(lambda: done.append(1))
    with pytest.raises(StoreError, match="create it first"):
        applier.drain()
    assert applier.failed() and done == []
    with pytest.raises(StoreError):
        applier.put(lambda: done.append(2))
    applier.stop()


def test_other_errors_are_named() -> None:
    applier = Applier()
    applier.put(lambda: 1 / 0)
    with pytest.raises(DetectError, match="ZeroDivisionError"):
        applier.drain()
    applier.stop()
