"""The tail of a SageMaker training job's log in CloudWatch Logs.

SageMaker writes one stream per host, `<job name>/algo-<n>-<epoch seconds>`, in one log group per
region. Streams appear only once the container writes, so "no streams" is an empty log, not an error.
"""

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# A job has one stream per instance (instance_count <= 256); DescribeLogStreams pages hold 50.
MAX_STREAMS = 256
# GetLogEvents returns at most 10,000 events per call.
MAX_EVENTS_PER_CALL = 10_000


def _streams(client, job_name: str) -> list[str]:
    names, token = [], None
    while len(names) < MAX_STREAMS:
        kwargs = {"nextToken": token} if token else {}
        page = client.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/", **kwargs)
        names += [stream["logStreamName"] for stream in page.get("logStreams", [])]
        token = page.get("nextToken")
        if not token:
            break
    return names


def log_tail(client, job_name: str, tail: int) -> list[str]:
    """The last `tail` lines over all of the job's hosts, oldest first. With several hosts each line
    is prefixed by its host (`[algo-2] ...`), so interleaved output stays readable."""
    from botocore.exceptions import ClientError

    try:
        streams = _streams(client, job_name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return []  # the log group is created by the first job that writes in this region
        raise
    events = []
    for stream in streams:
        page = client.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=False,
                                     limit=min(tail, MAX_EVENTS_PER_CALL))
        host = stream.removeprefix(f"{job_name}/").rsplit("-", 1)[0]
        events += [(event["timestamp"], host, event["message"].rstrip("\n")) for event in page.get("events", [])]
    events.sort(key=lambda event: (event[0], event[1]))
    lines = [f"[{host}] {message}" if len(streams) > 1 else message for _, host, message in events]
    return lines[-tail:] if tail else []
