"""Named fault points for tests: `faults.hit("submit_after_create")` does nothing unless the
environment says `TRAIN_FAULTS=submit_after_create:sigkill` (or `:raise`, `:sleep:N`).

Each configured fault fires once per data directory (a marker file records it), so a worker that is
killed and restarted with the same environment runs on normally the second time. Production settings
force TRAIN_FAULTS to empty."""

import os
import signal
import time
from pathlib import Path

from django.conf import settings


class InjectedFault(Exception):
    pass


def _configured() -> dict[str, str]:
    faults = {}
    for item in filter(None, (settings.TRAIN_FAULTS or "").split(",")):
        name, _, action = item.partition(":")
        faults[name.strip()] = action.strip()
    return faults


def _claim_once(name: str) -> bool:
    marker_dir = Path(settings.TRAIN_DATA_DIR) / "faults-fired"
    marker_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(marker_dir / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def hit(name: str) -> None:
    if not settings.TRAIN_FAULTS:
        return
    action = _configured().get(name)
    if action is None or not _claim_once(name):
        return
    if action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise InjectedFault(name)
    elif action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
