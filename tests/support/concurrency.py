"""Running one function in several threads at the same instant, each with its own DB connection."""

import threading

from django.db import connection


def run_at_once(func, count: int) -> list:
    """Start `count` threads that call `func()` together (behind a barrier); return their results.
    An exception in any thread fails the caller (a thread cannot fail a test itself)."""
    barrier, results, errors = threading.Barrier(count), [], []

    def worker():
        try:
            barrier.wait()
            results.append(func())
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results
