"""A bounded, thread-safe cache of SDK clients per target (region, endpoint, identity), shared by the
adapters. Building a client costs milliseconds; a cached one keeps its connection pool, refreshable
credentials and request pacing across calls. It is an optimisation only: another process builds its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Clients = TypeVar("Clients")


class ClientCache(Generic[Clients]):
    """Least-recently-used clients keyed by a hashable target, at most `size` of them."""

    def __init__(self, build: Callable[[Hashable], Clients], *, size: int):
        self.build = build
        self.size = size
        self._items: OrderedDict[Hashable, Clients] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, target: Hashable) -> Clients:
        with self._lock:
            clients = self._items.get(target)
            if clients is not None:
                self._items.move_to_end(target)
                return clients
        clients = self.build(target)  # outside the lock: building may do I/O
        with self._lock:
            clients = self._items.setdefault(target, clients)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return clients

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
