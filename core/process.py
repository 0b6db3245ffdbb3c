"""What one process keeps for itself: caches, circuit breakers, batching writers.

Each is a small object made by its factory the first time a process uses it, and made anew in a
forked child and after `reset_all()`. Losing one loses only speed, never data. Tests call
`reset_all()` so that each starts as a new server process would.
"""

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_registry: list["PerProcess[Any]"] = []


class PerProcess(Generic[T]):
    """A value made once per process by `factory`; `get()` returns it."""

    def __init__(self, factory: Callable[[], T], close: Callable[[T], None] | None = None) -> None:
        self._factory = factory
        self._close = close
        self._made: tuple[int, T] | None = None
        self._lock = threading.Lock()
        _registry.append(self)

    def get(self) -> T:
        made = self._made
        if made is None or made[0] != os.getpid():
            with self._lock:
                made = self._made
                if made is None or made[0] != os.getpid():
                    made = self._made = (os.getpid(), self._factory())
        return made[1]

    def reset(self) -> None:
        made, self._made = self._made, None
        if made is not None and made[0] == os.getpid() and self._close is not None:
            self._close(made[1])


def reset_all() -> None:
    """Forget every per-process value, as a new process would start."""
    for value in _registry:
        value.reset()
