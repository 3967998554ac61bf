"""A latest-value slot between two threads: the one hand-over the show's threads use.

The producer's ``put`` never blocks: a newer value replaces one the consumer has not
taken yet (the camera's frames, a sink's backgrounds, the generator's requests), so a
slow consumer always gets the newest value and never a backlog.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Latest(Generic[T]):
    """One value, newest wins.

    ``put`` (never blocks) replaces the value; ``take`` waits for a value and empties the
    slot; ``wait_newer`` waits for a value that passes a test and leaves it in place (the
    camera's frames: every reader sees the newest frame). ``close`` wakes every waiter and
    makes the waits return None until ``open``. ``lock`` lets an owner keep its own state
    under the same lock (a reentrant Condition by default).
    """

    def __init__(self, lock: threading.Condition | None = None) -> None:
        self._cond = lock if lock is not None else threading.Condition()
        self._value: T | None = None
        self._closed = False

    def put(self, value: T) -> bool:
        """Store ``value``; True when it replaced a value nobody had taken."""
        with self._cond:
            replaced = self._value is not None
            self._value = value
            self._cond.notify_all()
            return replaced

    def take(self, timeout_s: float | None = None) -> T | None:
        """The value (the slot is then empty), waiting up to ``timeout_s`` (None: until one
        comes or the slot closes). None on timeout or when closed and empty."""
        with self._cond:
            if self._value is None and not self._closed:
                self._cond.wait_for(lambda: self._value is not None or self._closed, timeout_s)
            value, self._value = self._value, None
            return value

    def wait_newer(self, newer: Callable[[T], bool], timeout_s: float) -> T | None:
        """The value once ``newer(value)`` holds, left in the slot; None on timeout or close."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._closed and (self._value is None or not newer(self._value)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return None if self._closed else self._value

    @property
    def pending(self) -> bool:
        """A value is waiting to be taken."""
        with self._cond:
            return self._value is not None

    def clear(self) -> None:
        with self._cond:
            self._value = None

    def close(self) -> None:
        """Wake every waiter; waits return None until ``open``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._closed = False
