"""A fake of Vertex AI's CustomJob REST API (v1), and of the Google services around it Train calls.

It behaves like the service where Train depends on it: Vertex names each job itself, so a repeated
create makes a second job; a new job stays QUEUED until the test moves it; cancel goes through
CANCELLING and is refused for a finished job; list filters (labels, state, AND / OR), applies
`readMask` and pages. Errors are Google-shaped (`{"error": {"code", "message", "status"}}`) and
faults come from the core's FaultPlan.

Also served, so TRAIN_CLOUD_EMULATOR can point everything here:
- the OAuth token endpoint (`POST /token`, the refresh-token grant of Train's emulator credentials),
- IAM Credentials `generateAccessToken` (source token -> the service account's token) and IAM
  `serviceAccounts.get` (its description, which names the Train account it serves),
- Cloud Logging `entries:list` (`resource.type="ml_job"`),
- optionally an Artifact Registry: `/v2/` proxied to a `registry_auth` fake (token flow in front of a
  real Distribution), with its realm moved onto this host (`ArtifactRegistryProxy`).
Every Vertex, IAM and Logging call needs a live access token of a service account Train may impersonate.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import UTC, datetime
from urllib.parse import unquote

from tests.fakecloud.core import DeliveryLog, FakeRequest, FakeResponse

PROJECT_NUMBER = "123456789012"
TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED")
JOBS_RE = re.compile(r"\A/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[a-z0-9-]+)/customJobs"
                     r"(?:/(?P<id>[0-9]+))?(?P<cancel>:cancel)?\Z")
SA_RE = re.compile(r"\A/v1/projects/-/serviceAccounts/(?P<email>[^/:]+)(?P<generate>:generateAccessToken)?\Z")
TERM_RE = re.compile(r'\A(?P<field>labels\.[a-z0-9_-]+|state|display_name)\s*(?P<op>!=|=|:)\s*'
                     r'(?:"(?P<value>[^"]*)"|(?P<any>\*))\Z')
LIST_PAGE_MAX = 100
TRAIN_IDENTITY_TOKEN = "train-emulator"  # the refresh token the emulator honours
CANCELLED = {"code": 1, "message": "CANCELED"}


class GoogleError(Exception):
    def __init__(self, code: int, status: str, message: str):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def google_error(code: int, status: str, message: str) -> FakeResponse:
    return FakeResponse.json(code, {"error": {"code": code, "message": message, "status": status}})


def _rfc3339(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _split(text: str, word: str) -> list[str]:
    """`text` split on ` word ` outside parentheses."""
    parts, depth, start, index = [], 0, 0, 0
    token = f" {word} "
    while index < len(text):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
        elif depth == 0 and text.startswith(token, index):
            parts.append(text[start:index])
            index += len(token)
            start = index
            continue
        index += 1
    return [*parts, text[start:]]


class TokenIssuer:
    """Access tokens with a lifetime; a `registry_auth` fake has the same interface and can stand in."""

    def __init__(self):
        self.lock = threading.Lock()
        self.token_seconds = 3600
        self.issued: dict[str, tuple[str, float, str]] = {}

    def issue(self, kind: str, subject: str) -> tuple[str, float]:
        token = f"{kind}-{secrets.token_urlsafe(24)}"
        expiry = time.time() + self.token_seconds
        with self.lock:
            self.issued[token] = (kind, expiry, subject)
        return token, expiry

    def valid(self, token: str, kind: str) -> str | None:
        with self.lock:
            kind_, expiry, subject = self.issued.get(token, ("", 0.0, ""))
        return subject if kind_ == kind and expiry > time.time() else None


class FakeVertex(DeliveryLog):
    name = "vertex"
    backend = "vertex-ai"

    def __init__(self, *, tokens=None, cancel_delay_seconds: float = 0.0):
        self.tokens = tokens or TokenIssuer()
        self.cancel_delay_seconds = cancel_delay_seconds
        # Service accounts Train's identity may impersonate (it holds Token Creator on them), and their
        # descriptions (IAM serviceAccounts.get).
        self.service_accounts: dict[str, str] = {}
        self.any_service_account = False  # standalone: every account may be impersonated
        self.jobs: dict[str, dict] = {}  # resource name -> the CustomJob as GET returns it
        self.creates: list[dict] = []  # every applied create body, in order
        self.creators: list[str] = []  # the service account that made each create
        self.log_entries: dict[str, list[dict]] = {}  # job number -> entries, oldest first
        self._init_deliveries()
        self.cancel_gates: dict[str, threading.Event] = {}
        self.auto_run: tuple[float, float] | None = None  # (start after, succeed after) seconds from create
        self._cancel_at: dict[str, float] = {}
        self._shown: list[str] = []
        self._next_id = 4_000_000_000_000_000_000  # Vertex ids: 19 digits

    # --- the protocol ------------------------------------------------------------------------------
    def matches(self, request: FakeRequest) -> bool:
        path = request.path
        return (path == "/token" or path == "/v2/entries:list" or bool(JOBS_RE.match(path))
                or bool(SA_RE.match(path)))

    def operation(self, request: FakeRequest) -> tuple[str, str]:
        path = request.path
        if path == "/token":
            return "OAuthToken", ""
        if path == "/v2/entries:list":
            return "ListLogEntries", ""
        if match := SA_RE.match(path):
            return ("GenerateAccessToken" if match["generate"] else "GetServiceAccount"), unquote(match["email"])
        match = JOBS_RE.match(path)
        resource = f"projects/{PROJECT_NUMBER}/locations/{match['location']}/customJobs/{match['id']}" \
            if match["id"] else ""
        if match["cancel"]:
            return "CancelCustomJob", resource
        if match["id"]:
            return "GetCustomJob", resource
        return ("CreateCustomJob" if request.method == "POST" else "ListCustomJobs"), ""

    def gate(self, operation: str, resource: str) -> None:
        if operation == "CancelCustomJob" and resource in self.cancel_gates:
            self.cancel_gates[resource].wait(timeout=30)

    def fault(self, kind: str) -> FakeResponse:
        if kind == "throttle":
            return google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Resource management "
                                "(CRUD) requests' and limit 'Resource management (CRUD) requests per minute per "
                                "region' of service 'aiplatform.googleapis.com'.")
        return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")

    def dispatch(self, operation: str, request: FakeRequest) -> FakeResponse:
        self._shown = []
        try:
            payload = getattr(self, f"_op_{operation}")(request)
        except GoogleError as exc:
            return google_error(exc.code, exc.status, exc.message)
        response = FakeResponse.json(200, payload)
        shown = self._shown
        response.on_delivery = lambda: self._record_delivery(shown)
        return response

    # --- credentials ------------------------------------------------------------------------------------
    def _op_OAuthToken(self, request: FakeRequest) -> dict:
        form = request.form()
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != TRAIN_IDENTITY_TOKEN:
            raise GoogleError(400, "INVALID_ARGUMENT", "invalid_grant")
        token, _expiry = self.tokens.issue("google-source", "train")
        return {"access_token": token, "expires_in": self.tokens.token_seconds, "token_type": "Bearer"}

    def _may_impersonate(self, email: str) -> bool:
        return self.any_service_account or email in self.service_accounts

    def _op_GenerateAccessToken(self, request: FakeRequest) -> dict:
        if self.tokens.valid(_bearer(request), "google-source") is None:
            raise GoogleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        email = unquote(SA_RE.match(request.path)["email"])
        if not self._may_impersonate(email):
            raise GoogleError(403, "PERMISSION_DENIED", f"Permission 'iam.serviceAccounts.getAccessToken' denied "
                              f"on resource (or it may not exist): {email}")
        token, expiry = self.tokens.issue("google-access", email)
        return {"accessToken": token, "expireTime": _rfc3339(expiry).split(".")[0] + "Z"}

    def _caller(self, request: FakeRequest) -> str:
        caller = self.tokens.valid(_bearer(request), "google-access")
        if caller is None:
            raise GoogleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        return caller

    def description(self, email: str) -> str:
        if email in self.service_accounts:
            return self.service_accounts[email]
        # Standalone: train-<account>@... serves Train account <account>.
        local = email.split("@", 1)[0]
        return f"train-account={local.removeprefix('train-')}"

    def _op_GetServiceAccount(self, request: FakeRequest) -> dict:
        self._caller(request)
        email = unquote(SA_RE.match(request.path)["email"])
        if not self._may_impersonate(email):
            raise GoogleError(404, "NOT_FOUND", f"Unknown service account {email}")
        project = email.split("@", 1)[1].split(".", 1)[0]
        return {"name": f"projects/{project}/serviceAccounts/{email}", "email": email, "projectId": project,
                "description": self.description(email)}

    # --- custom jobs ---------------------------------------------------------------------------------------
    def _op_CreateCustomJob(self, request: FakeRequest) -> dict:
        caller = self._caller(request)
        location = JOBS_RE.match(request.path)["location"]
        body = request.json()
        for required in ("displayName", "jobSpec"):
            if not body.get(required):
                raise GoogleError(400, "INVALID_ARGUMENT", f"CustomJob.{required} is required.")
        pools = body["jobSpec"].get("workerPoolSpecs") or []
        if not pools:
            raise GoogleError(400, "INVALID_ARGUMENT", "CustomJobSpec.workerPoolSpecs is required.")
        for pool in pools:
            uri = pool.get("containerSpec", {}).get("imageUri", "")
            if re.search(r":[^/@]+@sha256:", uri):
                raise GoogleError(400, "INVALID_ARGUMENT", f"Invalid image URI {uri}.")
            if not isinstance(pool.get("replicaCount", "1"), str):
                raise GoogleError(400, "INVALID_ARGUMENT", "replicaCount: int64 must be sent as a string.")
        self.creates.append(body)
        self.creators.append(caller)
        self._next_id += 1
        name = f"projects/{PROJECT_NUMBER}/locations/{location}/customJobs/{self._next_id}"
        now = time.time()
        self.jobs[name] = {**body, "name": name, "state": "JOB_STATE_QUEUED", "createTime": now, "updateTime": now}
        return self._show(self.jobs[name])

    def _op_GetCustomJob(self, request: FakeRequest) -> dict:
        self._caller(request)
        return self._show(self._job(self.operation(request)[1]))

    def _op_CancelCustomJob(self, request: FakeRequest) -> dict:
        self._caller(request)
        job = self._job(self.operation(request)[1])
        if job["state"] in TERMINAL:
            raise GoogleError(400, "FAILED_PRECONDITION", f"Cannot cancel CustomJob {job['name']} in state "
                              f"{job['state']}.")
        if job["state"] != "JOB_STATE_CANCELLING":
            self._move(job, "JOB_STATE_CANCELLING")
            self._cancel_at[job["name"]] = time.time() + self.cancel_delay_seconds
        return {}

    def _op_ListCustomJobs(self, request: FakeRequest) -> dict:
        self._caller(request)
        location = JOBS_RE.match(request.path)["location"]
        query = request.query
        jobs = [self._settle(j) for j in self.jobs.values() if f"/locations/{location}/" in j["name"]]
        if query.get("filter"):
            matches = self._compile(query["filter"])
            jobs = [j for j in jobs if matches(j)]
        jobs.sort(key=lambda j: (j["createTime"], j["name"]), reverse=True)  # newest first, as Vertex lists
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("pageSize") or LIST_PAGE_MAX), LIST_PAGE_MAX)
        page = jobs[start:start + size]
        mask = [f for f in query.get("readMask", "").split(",") if f]
        answer = {"customJobs": [self._show(j, mask) for j in page]}
        if start + size < len(jobs):
            answer["nextPageToken"] = str(start + size)
        return answer

    def _compile(self, text: str):
        """The filter as a predicate on a job (parsed once per request: a list may scan thousands)."""
        text = text.strip()
        for word, combine in (("AND", all), ("OR", any)):
            parts = _split(text, word)
            if len(parts) > 1:
                tests = [self._compile(part) for part in parts]
                return lambda job, tests=tests, combine=combine: combine(test(job) for test in tests)
        if text.startswith("(") and text.endswith(")"):
            return self._compile(text[1:-1])
        term = TERM_RE.match(text)
        if term is None:
            raise GoogleError(400, "INVALID_ARGUMENT", f"Invalid filter term {text!r}.")
        field, op, value, anything = term["field"], term["op"], term["value"], term["any"]

        def actual(job):
            if field.startswith("labels."):
                return job.get("labels", {}).get(field[len("labels."):])
            return job.get({"state": "state", "display_name": "displayName"}[field])

        if op == ":":
            return lambda job: (actual(job) is not None) if anything else (value in (actual(job) or ""))
        return (lambda job: actual(job) == value) if op == "=" else (lambda job: actual(job) != value)

    # --- logs ------------------------------------------------------------------------------------------------
    def _op_ListLogEntries(self, request: FakeRequest) -> dict:
        self._caller(request)
        body = request.json()
        match = re.fullmatch(r'resource\.type="ml_job" AND resource\.labels\.job_id="([0-9]+)"',
                             body.get("filter", ""))
        if match is None:
            raise GoogleError(400, "INVALID_ARGUMENT", "only ml_job filters by job_id are faked")
        entries = list(self.log_entries.get(match[1], []))
        if body.get("orderBy") == "timestamp desc":
            entries.reverse()
        return {"entries": entries[:int(body.get("pageSize") or 50)]}

    # --- helpers ---------------------------------------------------------------------------------------------
    def _job(self, name: str) -> dict:
        if name not in self.jobs:
            raise GoogleError(404, "NOT_FOUND", f"The CustomJob does not exist: {name}")
        return self._settle(self.jobs[name])

    def _settle(self, job: dict) -> dict:
        """Apply what time has made due (a cancel taking effect, a standalone job's run) before a read."""
        now = time.time()
        cancel_at = self._cancel_at.get(job["name"])
        if job["state"] == "JOB_STATE_CANCELLING" and cancel_at is not None and now >= cancel_at:
            self._move(job, "JOB_STATE_CANCELLED", error=CANCELLED)
        if self.auto_run and job["state"] not in TERMINAL and job["state"] != "JOB_STATE_CANCELLING":
            start_after, succeed_after = self.auto_run
            if now >= job["createTime"] + start_after and job["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING"):
                self._move(job, "JOB_STATE_RUNNING")
            if now >= job["createTime"] + succeed_after:
                self._move(job, "JOB_STATE_SUCCEEDED")
        return job

    def _show(self, job: dict, mask: list[str] | None = None) -> dict:
        self._shown.append(job["name"])
        shown = {k: v for k, v in job.items() if not mask or k in mask}
        for key in ("createTime", "updateTime", "startTime", "endTime"):
            if key in shown:
                shown[key] = _rfc3339(shown[key])
        return shown

    def _move(self, job: dict, state: str, *, error: dict | None = None) -> None:
        now = time.time()
        job.update(state=state, updateTime=now)
        if state == "JOB_STATE_RUNNING":
            job.setdefault("startTime", now)
        if state in TERMINAL:
            job["endTime"] = now
        if error:
            job["error"] = error

    # --- scripting API for tests (thread-safe through the cloud's lock) ------------------------------------
    def bind(self, cloud) -> FakeVertex:
        self.cloud = cloud
        return self

    def set_state(self, name: str, state: str, *, error: dict | None = None) -> None:
        with self.cloud.lock:
            self._move(self.jobs[name], state, error=error)

    def start(self, name: str) -> None:
        self.set_state(name, "JOB_STATE_RUNNING")

    def complete(self, name: str) -> None:
        self.set_state(name, "JOB_STATE_SUCCEEDED")

    def fail(self, name: str, message: str = "The replica workerpool0-0 exited with a non-zero status of 1.") -> None:
        self.set_state(name, "JOB_STATE_FAILED", error={"code": 3, "message": message})

    def expire(self, name: str) -> None:
        """Vertex enforcing scheduling.timeout: the job is cancelled, and nobody asked for it."""
        with self.cloud.lock:
            job = self.jobs[name]
            job["startTime"] = min(job.get("startTime", time.time()), time.time() - _timeout_seconds(job) - 1)
            self._move(job, "JOB_STATE_CANCELLED", error=CANCELLED)

    cancel_operation = "CancelCustomJob"

    def is_running(self, name: str) -> bool:
        return self.state_of(name) == "JOB_STATE_RUNNING"

    def state_of(self, name: str) -> str:
        with self.cloud.lock:
            return self._settle(self.jobs[name])["state"]

    def write_logs(self, name: str, lines: list[str], task: str = "workerpool0-0") -> None:
        number = name.rsplit("/", 1)[-1]
        with self.cloud.lock:
            entries = self.log_entries.setdefault(number, [])
            for line in lines:
                entries.append({"textPayload": line, "timestamp": _rfc3339(time.time()),
                                "resource": {"type": "ml_job", "labels": {"job_id": number, "task_name": task}}})

    def insert(self, body: dict, *, location: str, state: str = "JOB_STATE_RUNNING", name: str = "") -> str:
        """Add a job without a create call (benchmarks seeding thousands of jobs); returns its name."""
        with self.cloud.lock:
            self._next_id += 1
            name = name or f"projects/{PROJECT_NUMBER}/locations/{location}/customJobs/{self._next_id}"
            now = time.time()
            self.jobs[name] = {**body, "name": name, "state": "JOB_STATE_QUEUED", "createTime": now - 3600,
                               "updateTime": now - 3600}
            self._move(self.jobs[name], state)
            return name

    # The neutral part (tests/backends/invariants.CloudFake).
    @staticmethod
    def remote_key(job) -> str:
        return job.remote_id

    def finished_at(self, name: str) -> float | None:
        with self.cloud.lock:
            return self.jobs[name].get("endTime")

    def jobs_tagged(self, job_id: str) -> list[str]:
        with self.cloud.lock:
            return [name for name, job in self.jobs.items() if job.get("labels", {}).get("train-job-id") == job_id]

    def names(self) -> list[str]:
        with self.cloud.lock:
            return list(self.jobs)


def _timeout_seconds(job: dict) -> int:
    return int(job.get("jobSpec", {}).get("scheduling", {}).get("timeout", "604800s").rstrip("s"))


def _bearer(request: FakeRequest) -> str:
    value = request.headers.get("Authorization") or request.headers.get("authorization") or ""
    return value[7:] if value.startswith("Bearer ") else ""


class ArtifactRegistryProxy:
    """Artifact Registry on the fake cloud's own host: `/v2/` forwarded to a `registry_auth` fake (Google's
    token flow in front of a real Distribution), with its realm and redirects moved onto this host, so
    the registry and its token endpoint share the host TRAIN_CLOUD_EMULATOR names."""

    name = "artifact-registry"

    def __init__(self, upstream):
        self.upstream = upstream  # a tests.fakecloud.registry_auth.RegistryAuthFake
        self.base = ""

    def bind(self, cloud) -> ArtifactRegistryProxy:
        self.base = cloud.url
        return self

    def matches(self, request: FakeRequest) -> bool:
        return request.path.startswith("/v2/") and request.path != "/v2/entries:list"

    def operation(self, request: FakeRequest) -> tuple[str, str]:
        return ("RegistryToken" if request.path == "/v2/token" else "Registry"), ""

    def gate(self, operation: str, resource: str) -> None:
        pass

    def fault(self, kind: str) -> FakeResponse:
        return FakeResponse.json(503, {"errors": [{"code": "UNAVAILABLE", "message": "unavailable"}]})

    def dispatch(self, operation: str, request: FakeRequest) -> FakeResponse:
        from urllib.parse import urlencode

        import requests

        hop = ("host", "content-length", "connection")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
        url = self.upstream.base + request.path + (f"?{urlencode(request.query)}" if request.query else "")
        answer = requests.request(request.method, url, headers=headers, data=request.body or None,
                                  allow_redirects=False, timeout=60, verify=str(self.upstream.ca_bundle))
        out = {}
        dropped = ("connection", "transfer-encoding", "keep-alive", "server", "date")
        for key, value in answer.headers.items():
            if key.lower() in dropped or (key.lower() == "content-length" and request.method != "HEAD"):
                continue
            if key.lower() == "content-length":
                key = "Content-Length"
            out[key] = value.replace(self.upstream.base, self.base)
        return FakeResponse(answer.status_code, answer.content, out)


def standalone(cloud, *, run_seconds: float) -> list[str]:
    """Serve Vertex AI (and Google's token, IAM and logging endpoints) on `cloud`, running every created
    job to success `run_seconds` after its create."""
    fake = cloud.add(FakeVertex()).bind(cloud)
    fake.any_service_account = True
    fake.auto_run = (min(1.0, run_seconds / 2), run_seconds)
    cloud.vertex = fake
    return [
        f"vertex-ai: Vertex AI v1 CustomJobs, OAuth /token, IAM Credentials, IAM and Cloud Logging at {cloud.url}",
        f"  jobs start after {fake.auto_run[0]:g} s and succeed after {run_seconds:g} s",
        "  any service account may be impersonated; train-<account>@<project>.iam.gserviceaccount.com names "
        "Train account <account> in its description",
    ]
