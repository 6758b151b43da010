"""Run history: a job's failure text, times and log files, from the workspace's data plane.

Its endpoint is the workspace's: the workspace record's `discoveryUrl` names a discovery document
whose `api` is the run-history host (https://<region>.api.azureml.ms). Both are cached per workspace
in the process. Log files are SAS URLs run history hands out; they are read without Train's token.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime

import requests
from django.conf import settings

from backends.base import BackendError
from backends.common.endpoints import EndpointError, checked_endpoint_url

# The user's stdout/stderr: one file per process (std_log.txt, std_log_process_<n>.txt).
USER_LOG_PREFIX = "user_logs/std_log"
MAX_LOG_FILES = 64
MAX_LOG_BYTES = 8 * 1024 * 1024  # per file: the tail is kept, the rest streamed past
LOG_TIMEOUT_SECONDS = (5, 30)

_lock = threading.Lock()
_api_hosts: dict[tuple[str, str], str] = {}  # (ARM endpoint, workspace ARM id) -> run-history base URL


def cached_api_host(key: tuple[str, str]) -> str | None:
    with _lock:
        return _api_hosts.get(key)


def remember_api_host(key: tuple[str, str], url: str) -> None:
    with _lock:
        _api_hosts[key] = url


def api_hosts_clear() -> None:
    with _lock:
        _api_hosts.clear()


def _time(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def details_times(details: dict) -> tuple[datetime | None, datetime | None]:
    return _time(details.get("startTimeUtc")), _time(details.get("endTimeUtc"))


def details_error(details: dict) -> str:
    """`error.error.{code, message}` as "code: message" ("" when run history names none)."""
    error = details.get("error") or {}
    inner = error.get("error") if isinstance(error.get("error"), dict) else error
    code, message = str(inner.get("code") or ""), str(inner.get("message") or "")
    return f"{code}: {message}" if code and message else message or code


def user_log_files(details: dict) -> list[tuple[str, str]]:
    """(name, SAS URL) of the user's log files, std_log.txt first, then by process number."""
    files = details.get("logFiles") or {}
    names = sorted((name for name in files if name.startswith(USER_LOG_PREFIX) and name.endswith(".txt")),
                   key=lambda name: (len(name), name))
    return [(name, files[name]) for name in names[:MAX_LOG_FILES] if isinstance(files[name], str)]


def log_url(url: str) -> str:
    """The SAS URL if its host is one Train reads logs from (TRAIN_AZURE_ML_ENDPOINT_HOSTS)."""
    base, sep, rest = url.partition("://")
    host_end = rest.find("/")
    origin = f"{base}{sep}{rest if host_end < 0 else rest[:host_end]}"
    try:
        checked = checked_endpoint_url(origin, allowed_hosts=settings.TRAIN_AZURE_ML_ENDPOINT_HOSTS)
    except EndpointError as exc:
        raise BackendError(f"Run history named a log file on a host Train does not read from: {exc}",
                           permanent=True) from exc
    return checked + ("" if host_end < 0 else rest[host_end:])


def file_tail(url: str, tail: int) -> list[str]:
    """The last `tail` lines of one log file (no Train token: the SAS URL carries its own grant)."""
    try:
        with requests.get(log_url(url), stream=True, timeout=LOG_TIMEOUT_SECONDS) as response:
            if response.status_code == 404:
                return []
            if response.status_code != 200:
                raise BackendError(f"A log file answered {response.status_code}.")
            lines: deque[str] = deque(maxlen=tail)
            read, pending = 0, b""
            for chunk in response.iter_content(65536):
                read += len(chunk)
                pending += chunk
                *complete, pending = pending.split(b"\n")
                lines.extend(line.decode(errors="replace").rstrip("\r") for line in complete)
                if read > MAX_LOG_BYTES:
                    break
            if pending:
                lines.append(pending.decode(errors="replace").rstrip("\r"))
            return list(lines)
    except requests.RequestException as exc:
        raise BackendError(f"Could not read a log file: {exc}") from exc


def log_tail(details: dict, tail: int) -> list[str]:
    """The last `tail` lines over the user's log files; with several processes each line is
    prefixed by its file's process (`[process_1] …`)."""
    files = user_log_files(details)
    lines = []
    for name, url in files:
        label = name.removeprefix(USER_LOG_PREFIX).removesuffix(".txt").lstrip("_") or "process_0"
        lines += [f"[{label}] {line}" if len(files) > 1 else line for line in file_tail(url, tail)]
    return lines[-tail:] if tail else []
