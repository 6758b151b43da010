"""`python -m tests.fakecloud --port P`: every cloud's fake on one local port, for trying Train's cloud
backends without a cloud account.

Each cloud's fake module that is present adds its handlers through its `standalone(cloud, run_seconds=…)`,
which makes every job created there run to completion `run_seconds` after its create, and says what it
serves. Point Train at the result with the TRAIN_CLOUD_EMULATOR line printed last (development only).
Runs until SIGINT or SIGTERM.
"""

import argparse
import importlib
import signal
import sys
import threading

from tests.fakecloud.core import FakeCloud

CLOUD_MODULES = ("tests.fakecloud.sagemaker", "tests.fakecloud.vertex", "tests.fakecloud.azureml")
DEFAULT_RUN_SECONDS = 20.0


def serve(cloud: FakeCloud, run_seconds: float, out=sys.stdout) -> None:
    """Add every present cloud's standalone handlers to `cloud` and print what they serve."""
    for name in CLOUD_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise  # the module exists but something it needs is missing: say so
            print(f"{name.rsplit('.', 1)[1]}: not in this tree, not served", file=out)
            continue
        for line in module.standalone(cloud, run_seconds=run_seconds):
            print(line, file=out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakecloud", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--run-seconds", type=float, default=DEFAULT_RUN_SECONDS,
                        help=f"how long each created job runs before it completes (default {DEFAULT_RUN_SECONDS:g})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault source (no faults are injected)")
    options = parser.parse_args(argv)
    if options.run_seconds <= 0:
        parser.error("--run-seconds must be positive")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cloud = FakeCloud(seed=options.seed, port=options.port)
    try:
        cloud.start()
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{options.port}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        serve(cloud, options.run_seconds)
        print(f"export TRAIN_CLOUD_EMULATOR={cloud.url}", flush=True)
        stop.wait()
    finally:
        cloud.stop()
    print("fake cloud stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
