"""Admission control: a bounded number of requests at work, a short queue, and a fast "no".

Image operations cost ~50-500 ms of CPU each; queueing them without bound only makes every answer
late (and the process large). A gate lets ``max_inflight`` requests run, lets ``max_queue`` more
wait for a turn (at most ``max_wait`` seconds), and refuses the rest at once with
``ThrottlingException``, which the AWS SDKs retry with back-off: under overload, clients slow down
instead of the server falling over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rekface.errors import ThrottlingException

_SLOW_DOWN = "Rate exceeded"


class Gate:
    def __init__(self, name: str, max_inflight: int, max_queue: int, max_wait: float) -> None:
        if max_inflight < 1 or max_queue < 0:
            raise ValueError("a gate needs max_inflight >= 1 and max_queue >= 0")
        self.name = name
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.max_wait = max_wait
        self._cond = threading.Condition()
        self.inflight = 0
        self.queued = 0

    @contextmanager
    def enter(self) -> Iterator[None]:
        self._acquire()
        try:
            yield
        finally:
            with self._cond:
                self.inflight -= 1
                self._cond.notify()

    def _acquire(self) -> None:
        with self._cond:
            if self.inflight < self.max_inflight and self.queued == 0:
                self.inflight += 1
                return
            if self.queued >= self.max_queue:
                raise ThrottlingException(_SLOW_DOWN)
            self.queued += 1
            deadline = time.monotonic() + self.max_wait
            try:
                while self.inflight >= self.max_inflight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ThrottlingException(_SLOW_DOWN)
                    self._cond.wait(left)
                self.inflight += 1
            finally:
                self.queued -= 1

    def in_use(self) -> int:
        """Requests at work or waiting, for sizing the server's thread pool."""
        return self.max_inflight + self.max_queue
