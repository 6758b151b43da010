"""Client-side request pacing shared by every adapter: a token bucket per cloud principal and region,
so that Train stays under a cloud's per-account control-plane limits however many jobs it follows."""

from __future__ import annotations

import threading
import time


class RequestPacer:
    """A token bucket shared by every client of one target: each HTTP attempt (retries included)
    takes a token, waiting when the bucket is empty. `wait` accepts and ignores keyword arguments, so
    it can be registered as an SDK event hook."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens, self.updated = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def wait(self, **_event) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                delay = (1 - self.tokens) / self.rate
            time.sleep(delay)
