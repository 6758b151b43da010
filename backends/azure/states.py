"""Azure ML job states as Train statuses (the state table in docs/backends/azure-ml.md).

The ARM job resource carries its status but neither its failure text nor its start and end times;
those come from run history (backends/azure/runs.py), read once when a job is seen finished.
A cancel Azure made because `limits.timeout` passed arrives as Canceled; the core reads a cloud-side
cancel after the job's max runtime, without a Train cancel request, as EXPIRED (jobs.observations).
"""

from backends.base import RemoteStatus

PENDING = "PENDING"
STATES = {
    "NotStarted": PENDING, "Starting": PENDING, "Provisioning": PENDING, "Preparing": PENDING, "Queued": PENDING,
    "Paused": PENDING,
    "Running": "IN_PROGRESS", "Finalizing": "IN_PROGRESS", "NotResponding": "IN_PROGRESS",
    "Completed": "COMPLETED", "Failed": "FAILED", "Canceled": "CANCELED",
    # CancelRequested: keeps the job's current status (a queued job being cancelled never ran), and
    # Unknown tells nothing: both map to None, shown as the native state.
    "CancelRequested": None, "Unknown": None,
}
TERMINAL = frozenset({"Completed", "Failed", "Canceled"})
MESSAGES = {
    "NotResponding": "Warning: Azure ML lost the job's heartbeat (NotResponding); it may recover.",
    "Queued": "Waiting for compute nodes.",
    "Preparing": "Preparing the environment (pulling the image).",
    "CancelRequested": "Cancel requested.",
}


def native_status(record: dict) -> str:
    return str(record.get("properties", {}).get("status") or "Unknown")


def observation(record: dict, details: dict | None = None) -> RemoteStatus:
    """One ARM job record (and, for a finished job, its run-history details) as a RemoteStatus."""
    from backends.azure.runs import details_error, details_times

    status = native_status(record)
    mapped = STATES.get(status)
    message = MESSAGES.get(status, "")
    started = finished = None
    if status in TERMINAL:
        started, finished = details_times(details or {})
        if status == "Failed":
            message = details_error(details or {}) or "Azure ML reported the job as failed without a reason."
        elif status == "Canceled":
            message = "Azure ML canceled the job."
    return RemoteStatus(status=mapped, remote_status=status, message=message[:1024], started_at=started,
                        finished_at=finished)
