"""The tail of a Vertex AI CustomJob's log in Cloud Logging.

Vertex writes each replica's stdout and stderr as entries of resource type `ml_job`, labelled with the
job's numeric id and the replica (`task_name`: workerpool0-0, workerpool1-3, ...). Entries appear once
a container writes, so "no entries" is an empty log, not an error.
"""

from __future__ import annotations

ENTRIES_PAGE_MAX = 1000  # entries:list pageSize ceiling


def job_number(resource_name: str) -> str:
    """`projects/p/locations/l/customJobs/123` -> `123`."""
    return resource_name.rsplit("/", 1)[-1]


def entries_request(project: str, resource_name: str, tail: int) -> dict:
    return {"resourceNames": [f"projects/{project}"],
            "filter": f'resource.type="ml_job" AND resource.labels.job_id="{job_number(resource_name)}"',
            "orderBy": "timestamp desc", "pageSize": min(max(tail, 1), ENTRIES_PAGE_MAX)}


def _text(entry: dict) -> str:
    if "textPayload" in entry:
        return str(entry["textPayload"])
    payload = entry.get("jsonPayload") or {}
    return str(payload.get("message", payload))


def _task(entry: dict) -> str:
    return entry.get("resource", {}).get("labels", {}).get("task_name", "")


def log_tail(session, project: str, resource_name: str, tail: int) -> list[str]:
    """The last `tail` lines over all of the job's replicas, oldest first; with several replicas each
    line is prefixed by its replica (`[workerpool1-0] ...`)."""
    if tail <= 0:
        return []
    answer = session.call("POST", f"{session.target.logging_url}/v2/entries:list",
                          body=entries_request(project, resource_name, tail))
    entries = list(reversed(answer.get("entries", [])))[-tail:]
    tasks = {_task(entry) for entry in entries}
    lines = []
    for entry in entries:
        task, line = _task(entry), _text(entry).rstrip("\n")
        lines.append(f"[{task}] {line}" if len(tasks) > 1 and task else line)
    return lines
