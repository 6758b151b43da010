"""The Procfile's own command lines, for tests and benchmarks: one source of truth for how the
gateway and the worker are started.

`procfile_argv("web", {"PORT": "8123"})` reads the `web:` line, expands `$NAME`, `${NAME}` and
`${NAME:-default}` from the given variables (then the environment) the way a shell does, and splits
it into argv. The program is run with the current interpreter (`python` and `gunicorn` become
`sys.executable` and `sys.executable -m gunicorn`), so the venv that runs the tests runs the service;
no flag is added or removed."""

import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
VARIABLE_RE = re.compile(rf"\$(?:\{{(?P<braced>{NAME})(?::-(?P<default>[^}}]*))?\}}|(?P<bare>{NAME}))")
INTERPRETERS = {"python": [sys.executable], "python3": [sys.executable], "gunicorn": [sys.executable, "-m", "gunicorn"]}


def procfile_line(process_type: str) -> str:
    for line in PROCFILE.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == process_type:
            return command.strip()
    raise KeyError(f"the Procfile has no {process_type!r} process type")


def expand(command: str, variables: dict) -> str:
    """Shell parameter expansion of $NAME, ${NAME} and ${NAME:-default} (empty counts as unset for :-)."""
    def value(match):
        name = match["braced"] or match["bare"]
        found = variables.get(name, os.environ.get(name, ""))
        if match["default"] is not None and not found:
            return match["default"]
        return found

    return VARIABLE_RE.sub(value, command)


def procfile_argv(process_type: str, variables: dict | None = None) -> list[str]:
    argv = shlex.split(expand(procfile_line(process_type), {k: str(v) for k, v in (variables or {}).items()}))
    return [*INTERPRETERS.get(argv[0], [argv[0]]), *argv[1:]]
