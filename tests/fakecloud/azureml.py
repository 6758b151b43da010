"""A fake of Azure ML as Train uses it: Entra ID's token endpoint, ARM's workspace, environment-version
and job routes (`…/workspaces/<ws>/…?api-version=`), the cancel long-running operation, workspace
discovery, run-history details and the log files they point at.

Where Train depends on it, it behaves like the service: job names are unique in a workspace and a
second PUT of a name with another body is refused (UserError "A job with this name already exists");
an identical re-PUT is an update; cancel answers 202 with Azure-AsyncOperation and Location and goes
through CancelRequested; a finished job cannot be cancelled; failure text and times live in run
history, not on the ARM job; errors have ARM's shape, 429s carry Retry-After; only the API versions
Train pins are served; every ARM and run-history call needs a Bearer token this fake's Entra ID
issued for the workspace's tenant. Tests script states with `start` / `complete` / `fail` /
`expire` / `set_state`, and read `creates`, `observed` and the core's counters.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

from backends.azure import api
from backends.azure.entra import ASSERTION_TYPE, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET
from tests.fakecloud.core import DeliveryLog, FakeRequest, FakeResponse

WS = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices"
      r"/workspaces/(?P<ws>[^/]+)")
ROUTES = [
    ("POST", re.compile(r"\A/(?P<tenant>[^/]+)/oauth2/v2\.0/token\Z"), "EntraToken"),
    ("GET", re.compile(rf"\A{WS}\Z"), "GetWorkspace"),
    ("PUT", re.compile(rf"\A{WS}\Z"), "PutWorkspace"),
    ("PUT", re.compile(rf"\A{WS}/environments/(?P<env>[^/]+)/versions/(?P<version>[^/]+)\Z"), "PutEnvironmentVersion"),
    ("GET", re.compile(rf"\A{WS}/environments/(?P<env>[^/]+)/versions/(?P<version>[^/]+)\Z"), "GetEnvironmentVersion"),
    ("GET", re.compile(rf"\A{WS}/jobs\Z"), "ListJobs"),
    ("PUT", re.compile(rf"\A{WS}/jobs/(?P<name>[^/]+)\Z"), "PutJob"),
    ("GET", re.compile(rf"\A{WS}/jobs/(?P<name>[^/]+)\Z"), "GetJob"),
    ("POST", re.compile(rf"\A{WS}/jobs/(?P<name>[^/]+)/cancel\Z"), "CancelJob"),
    ("GET", re.compile(r"\A/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+"
                       r"/mfeOperation(?:Statuses|Results)/(?P<op>[^/]+)\Z"), "GetOperation"),
    ("GET", re.compile(rf"\A/azureml-discovery{WS}\Z"), "Discovery"),
    ("GET", re.compile(rf"\A/history/v1\.0{WS}/runs/(?P<name>[^/]+)/details\Z"), "RunDetails"),
    ("GET", re.compile(r"\A/azureml-blobs/(?P<name>[^/]+)/(?P<file>.+)\Z"), "LogFile"),
    # ACR's exchange of an Entra ID token for a registry refresh token: served by the standalone
    # emulator, whose /v2/ is the registry mirrored images go to (tests use registry_auth's instead).
    ("POST", re.compile(r"\A/oauth2/exchange\Z"), "AcrExchange"),
]
API_VERSIONS = {"GetWorkspace": api.WORKSPACES_API_VERSION, "PutWorkspace": api.WORKSPACES_API_VERSION,
                "PutEnvironmentVersion": api.ENVIRONMENTS_API_VERSION,
                "GetEnvironmentVersion": api.ENVIRONMENTS_API_VERSION, "ListJobs": api.JOBS_API_VERSION,
                "PutJob": api.JOBS_API_VERSION, "GetJob": api.JOBS_API_VERSION, "CancelJob": api.JOBS_API_VERSION}
UNAUTHENTICATED = {"EntraToken", "Discovery", "LogFile", "GetOperation", "AcrExchange"}
TERMINAL = ("Completed", "Failed", "Canceled")
# What may differ between two PUTs of one job name (Azure's message names these).
MUTABLE = ("description", "tags", "displayName", "isArchived")
TOKEN_SECONDS = 3600
DEFAULT_FAILURE = "Execution failed. User process 'python' exited with status code 1."


class AzureError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _error(status: int, code: str, message: str, headers: dict | None = None) -> FakeResponse:
    response = FakeResponse.json(status, {"error": {"code": code, "message": message}})
    response.headers.update(headers or {})
    return response


def _iso(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


def _timeout_seconds(job: dict) -> int:
    match = re.fullmatch(r"PT(\d+)S", job["properties"].get("limits", {}).get("timeout", "") or "")
    return int(match.group(1)) if match else 0


class FakeAzureML(DeliveryLog):
    name = "azureml"
    backend = "azure-ml"

    def __init__(self, *, cancel_delay_seconds: float = 0.0, auto_run_seconds: float | None = None):
        self.cancel_delay_seconds = cancel_delay_seconds
        self.auto_run_seconds = auto_run_seconds  # standalone: created jobs run to completion by themselves
        self.open_workspace_create = False  # standalone: PUT of a workspace needs no token
        self.apps: dict[str, dict[str, str]] = {}  # tenant -> {client id: secret} (consented apps)
        self.federated: dict[str, str] = {}  # client id -> the assertion its federated credential accepts
        self.certificates: dict[str, object] = {}  # client id -> the public key of its registered certificate
        self.token_check = None  # optional callable(token) -> tenant | None, for tokens another fake issued
        self.tokens: dict[str, tuple[str, str, float]] = {}  # token -> (tenant, scope, expiry)
        self.workspaces: dict[str, dict] = {}  # ARM id (lower case) -> record
        self.environments: dict[str, dict] = {}  # ARM id -> body
        self.jobs: dict[str, dict] = {}  # (workspace id lower)/name -> record
        self.runtime: dict[str, dict] = {}  # job key -> {"created", "started", "ended", "error", "logs"}
        self.operations: dict[str, str] = {}  # operation id -> job key
        self.creates: list[dict] = []  # every applied job PUT body, in order
        self.quota_full = False  # while set, a new job's PUT is refused with QuotaExceeded
        self._init_deliveries()
        self.cancel_gates: dict[str, threading.Event] = {}  # job name -> CancelJob waits until it is set
        self._shown: list[str] = []
        self.base = ""

    # --- the CloudHandler protocol ---------------------------------------------------------------------
    def bind(self, cloud) -> FakeAzureML:
        self.cloud = cloud
        self.base = cloud.url
        return self

    def _route(self, request: FakeRequest):
        for method, pattern, operation in ROUTES:
            if request.method == method and (match := pattern.match(request.path)):
                return operation, match.groupdict()
        return None, {}

    def matches(self, request: FakeRequest) -> bool:
        return self._route(request)[0] is not None

    def operation(self, request: FakeRequest) -> tuple[str, str]:
        operation, groups = self._route(request)
        return operation, unquote(groups.get("name", ""))

    def gate(self, operation: str, resource: str) -> None:
        if operation == "CancelJob" and resource in self.cancel_gates:
            self.cancel_gates[resource].wait(timeout=30)

    def fault(self, kind: str) -> FakeResponse:
        if kind == "throttle":
            return _error(429, "TooManyRequests", "The request was throttled.", {"Retry-After": "1"})
        return _error(500, "InternalServerError", "An internal server error occurred.")

    def dispatch(self, operation: str, request: FakeRequest) -> FakeResponse:
        _, groups = self._route(request)
        groups = {key: unquote(value) for key, value in groups.items()}
        self._shown = []
        try:
            if operation in API_VERSIONS and request.query.get("api-version") != API_VERSIONS[operation]:
                raise AzureError(400, "InvalidApiVersionParameter",
                                 f"The api-version '{request.query.get('api-version')}' is invalid here; this fake "
                                 f"serves {API_VERSIONS[operation]}.")
            if operation not in UNAUTHENTICATED and not (operation == "PutWorkspace" and self.open_workspace_create):
                self._authenticate(request, groups)
            response = getattr(self, f"_op_{operation}")(request, groups)
        except AzureError as exc:
            return _error(exc.status, exc.code, exc.message, exc.headers)
        shown = self._shown
        response.on_delivery = lambda: self._record_delivery(shown)
        return response

    # --- Entra ID -------------------------------------------------------------------------------------------
    def _op_EntraToken(self, request: FakeRequest, groups: dict) -> FakeResponse:
        form, tenant = dict(parse_qsl(request.body.decode())), groups["tenant"]
        client = form.get("client_id", "")
        if form.get("grant_type") != "client_credentials":
            return FakeResponse.json(400, {"error": "unsupported_grant_type"})
        emulator = client == EMULATOR_CLIENT_ID and form.get("client_secret") == EMULATOR_CLIENT_SECRET
        consented = client in self.apps.get(tenant, {}) or emulator
        if not consented:
            return FakeResponse.json(400, {"error": "unauthorized_client", "error_description":
                                           f"AADSTS700016: Application with identifier '{client}' was not found in "
                                           f"the directory '{tenant}'."})
        if not emulator:
            secret_ok = form.get("client_secret") and form.get("client_secret") == self.apps[tenant][client]
            assertion_ok = form.get("client_assertion_type") == ASSERTION_TYPE and (
                self.federated.get(client) == form.get("client_assertion")
                or self._signed_by_certificate(client, form.get("client_assertion", ""), tenant))
            if not (secret_ok or assertion_ok):
                return FakeResponse.json(401, {"error": "invalid_client",
                                               "error_description": "AADSTS7000215: Invalid client secret provided."})
        token = f"aad-{secrets.token_urlsafe(24)}"
        self.tokens[token] = (tenant, form.get("scope", ""), time.time() + TOKEN_SECONDS)
        return FakeResponse.json(200, {"token_type": "Bearer", "expires_in": TOKEN_SECONDS, "access_token": token})

    def _signed_by_certificate(self, client: str, assertion: str, tenant: str) -> bool:
        import jwt

        key = self.certificates.get(client)
        if key is None or not jwt.get_unverified_header(assertion).get("x5t"):
            return False
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256"],
                                audience=f"{self.base}/{tenant}/oauth2/v2.0/token", issuer=client)
        except jwt.InvalidTokenError:
            return False
        return claims.get("sub") == client

    def _authenticate(self, request: FakeRequest, groups: dict) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        tenant, scope, expiry = self.tokens.get(token, ("", "", 0.0))
        if not tenant and self.token_check is not None:
            tenant, scope, expiry = self.token_check(token) or "", api.ARM_SCOPE, time.time() + 60
        if not tenant or expiry < time.time():
            raise AzureError(401, "InvalidAuthenticationToken", "The access token is invalid or expired.")
        if scope != api.ARM_SCOPE:
            raise AzureError(401, "InvalidAuthenticationToken", f"The access token's audience is {scope!r}, not ARM.")
        workspace = self.workspaces.get(self._workspace_id(groups).lower()) if "ws" in groups else None
        if workspace is not None and workspace.get("_tenant") not in (None, tenant):
            raise AzureError(401, "InvalidAuthenticationTokenTenant",
                             f"The access token is from the wrong issuer: tenant {tenant}, not {workspace['_tenant']}.")

    # --- workspaces and environments ----------------------------------------------------------------------
    @staticmethod
    def _workspace_id(groups: dict) -> str:
        return api.Workspace(groups["sub"], groups["rg"], groups["ws"]).arm_id

    def _workspace(self, groups: dict) -> dict:
        record = self.workspaces.get(self._workspace_id(groups).lower())
        if record is None:
            raise AzureError(404, "ResourceNotFound", f"The Resource '{groups['ws']}' was not found.")
        return record

    def add_workspace(self, subscription: str, resource_group: str, name: str, *, tenant: str | None,
                      region: str = "westeurope", tags: dict | None = None) -> dict:
        arm_id = api.Workspace(subscription, resource_group, name).arm_id
        record = {"id": arm_id, "name": name, "type": "Microsoft.MachineLearningServices/workspaces",
                  "location": region, "tags": dict(tags or {}), "_tenant": tenant,
                  "properties": {"discoveryUrl": f"{self.base}/azureml-discovery{arm_id}",
                                 "provisioningState": "Succeeded"}}
        with self.cloud.lock:
            self.workspaces[arm_id.lower()] = record
        return record

    def _op_AcrExchange(self, request: FakeRequest, groups: dict) -> FakeResponse:
        form = dict(parse_qsl(request.body.decode()))
        issued = self.tokens.get(form.get("access_token", ""))
        if form.get("grant_type") != "access_token" or issued is None or issued[2] < time.time():
            return FakeResponse.json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid access token"}]})
        return FakeResponse.json(200, {"refresh_token": "emulator-refresh-" + secrets.token_urlsafe(16)})

    def _op_GetWorkspace(self, request, groups) -> FakeResponse:
        return FakeResponse.json(200, {k: v for k, v in self._workspace(groups).items() if not k.startswith("_")})

    def _op_PutWorkspace(self, request, groups) -> FakeResponse:
        body = request.json()
        record = self.add_workspace(groups["sub"], groups["rg"], groups["ws"], tenant=None,
                                    region=body.get("location", "westeurope"), tags=body.get("tags"))
        return FakeResponse.json(200, {k: v for k, v in record.items() if not k.startswith("_")})

    def _op_Discovery(self, request, groups) -> FakeResponse:
        self._workspace(groups)
        return FakeResponse.json(200, {"api": self.base, "catalog": self.base, "experimentation": self.base,
                                       "history": self.base})

    def _op_PutEnvironmentVersion(self, request, groups) -> FakeResponse:
        self._workspace(groups)
        body = request.json()
        image = body.get("properties", {}).get("image")
        if not image:
            raise AzureError(400, "UserError", "An environment needs an image.")
        arm_id = f"{self._workspace_id(groups)}/environments/{groups['env']}/versions/{groups['version']}"
        existing = self.environments.get(arm_id)
        if existing is not None and existing != body:
            raise AzureError(409, "UserError", "An environment version with this name and version already exists "
                             "with another definition; environment versions are immutable.")
        self.environments[arm_id] = body
        return FakeResponse.json(200 if existing else 201, {"id": arm_id, "name": groups["version"], **body})

    def _op_GetEnvironmentVersion(self, request, groups) -> FakeResponse:
        self._workspace(groups)
        arm_id = f"{self._workspace_id(groups)}/environments/{groups['env']}/versions/{groups['version']}"
        if arm_id not in self.environments:
            raise AzureError(404, "ResourceNotFound", f"Environment version {groups['env']}:{groups['version']} "
                             "was not found.")
        return FakeResponse.json(200, {"id": arm_id, "name": groups["version"], **self.environments[arm_id]})

    # --- jobs ---------------------------------------------------------------------------------------------
    def _key(self, groups: dict) -> str:
        return f"{self._workspace_id(groups).lower()}/{groups['name']}"

    def _op_PutJob(self, request, groups) -> FakeResponse:
        self._workspace(groups)
        body, name = request.json(), groups["name"]
        properties = body.get("properties", {})
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}", name):
            raise AzureError(400, "UserError", f"Invalid job name {name!r}.")
        if properties.get("jobType") != "Command" or not properties.get("command"):
            raise AzureError(400, "UserError", "A command job needs jobType Command and a command.")
        environment = properties.get("environmentId", "")
        if environment not in self.environments:
            raise AzureError(400, "UserError", f"Environment {environment} not found.")
        key = self._key(groups)
        job = self.jobs.get(key)
        if job is not None:
            sent = {k: v for k, v in properties.items() if k not in MUTABLE}
            stored = {k: v for k, v in job["_sent"].items() if k not in MUTABLE}
            if sent != stored:
                raise AzureError(400, "UserError", "A job with this name already exists. If you are trying to update "
                                 "an existing job, only description, tags, displayName, properties, isArchived can "
                                 "be updated.")
            job["properties"].update({k: properties[k] for k in MUTABLE if k in properties})
            return FakeResponse.json(200, self._show(key))
        if self.quota_full:
            size = properties.get("resources", {}).get("instanceType", "the requested VM size")
            raise AzureError(400, "QuotaExceeded", f"Not enough quota available for {size} in this subscription. "
                             "Request an increase, or try again once other jobs have finished.")
        now = time.time()
        record = {"id": f"{self._workspace_id(groups)}/jobs/{name}", "name": name,
                  "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                  "properties": {**properties, "status": "NotStarted"}, "systemData": {"createdAt": _iso(now)},
                  "_sent": properties}
        self.jobs[key] = record
        self.runtime[key] = {"created": now, "started": None, "ended": None, "error": None, "logs": {},
                             "cancel_at": None}
        self.creates.append(body)
        return FakeResponse.json(201, self._show(key))

    def _settle(self, key: str) -> dict:
        """Apply what time decides before anyone reads the job: a due CancelRequested -> Canceled, and
        (standalone) the automatic run."""
        job, run = self.jobs[key], self.runtime[key]
        now, status = time.time(), job["properties"]["status"]
        if status == "CancelRequested" and run["cancel_at"] is not None and now >= run["cancel_at"]:
            self._move(key, "Canceled")
        elif self.auto_run_seconds is not None and status not in TERMINAL and status != "CancelRequested":
            starts_at = run["created"] + min(1.0, self.auto_run_seconds / 2)
            if now >= run["created"] + self.auto_run_seconds:
                if run["started"] is None:  # nobody looked while it ran: it still started, as a real job does
                    run["started"] = starts_at
                self._move(key, "Completed")
            elif now >= starts_at and status != "Running":
                self._move(key, "Running")
        return job

    def _show(self, key: str) -> dict:
        job = self._settle(key)
        self._shown.append(job["name"])
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _job_key(self, groups: dict) -> str:
        self._workspace(groups)
        key = self._key(groups)
        if key not in self.jobs:
            raise AzureError(404, "UserError", f"Could not find job {groups['name']}.")
        return key

    def _op_GetJob(self, request, groups) -> FakeResponse:
        return FakeResponse.json(200, self._show(self._job_key(groups)))

    def _op_ListJobs(self, request, groups) -> FakeResponse:
        prefix = self._workspace_id(groups).lower() + "/"
        self._workspace(groups)
        keys = [key for key in self.jobs if key.startswith(prefix)]
        if request.query.get("jobType"):
            keys = [k for k in keys if self.jobs[k]["properties"].get("jobType") == request.query["jobType"]]
        return FakeResponse.json(200, {"value": [self._show(key) for key in keys]})

    def _op_CancelJob(self, request, groups) -> FakeResponse:
        key = self._job_key(groups)
        status = self._settle(key)["properties"]["status"]
        if status in TERMINAL:
            raise AzureError(400, "UserError", f"Cannot cancel job {groups['name']}: it is in the terminal state "
                             f"{status}.")
        if status != "CancelRequested":
            self._move(key, "CancelRequested")
            self.runtime[key]["cancel_at"] = time.time() + self.cancel_delay_seconds
        self._settle(key)
        operation = secrets.token_hex(8)
        self.operations[operation] = key
        location = self.workspaces[self._workspace_id(groups).lower()]["location"]
        url = (f"{self.base}/subscriptions/{groups['sub']}/providers/Microsoft.MachineLearningServices/locations/"
               f"{location}/mfeOperationStatuses/{operation}?api-version={api.JOBS_API_VERSION}")
        return FakeResponse(202, b"", {"Azure-AsyncOperation": url, "Location": url.replace("Statuses", "Results"),
                                       "Retry-After": "1"})

    def _op_GetOperation(self, request, groups) -> FakeResponse:
        key = self.operations.get(groups["op"])
        if key is None:
            raise AzureError(404, "NotFound", "No such operation.")
        status = self._settle(key)["properties"]["status"]
        state = "Succeeded" if status in TERMINAL else "InProgress"
        return FakeResponse.json(200, {"status": state, "name": groups["op"]})

    # --- run history -------------------------------------------------------------------------------------------
    def _op_RunDetails(self, request, groups) -> FakeResponse:
        key = self._job_key(groups)
        job, run = self._settle(key), self.runtime[key]
        details = {"runId": job["name"], "status": job["properties"]["status"],
                   "startTimeUtc": _iso(run["started"]), "endTimeUtc": _iso(run["ended"]), "warnings": [],
                   "logFiles": {file: f"{self.base}/azureml-blobs/{job['name']}/{file}?sv=2021&sig=fake"
                                for file in run["logs"]}}
        if run["error"]:
            details["error"] = {"error": {"code": "UserError", "message": run["error"]}}
        return FakeResponse.json(200, details)

    def _op_LogFile(self, request, groups) -> FakeResponse:
        if request.query.get("sig") != "fake":
            return FakeResponse(403, b"<Error><Code>AuthenticationFailed</Code></Error>")
        for key, run in self.runtime.items():
            if key.endswith("/" + groups["name"]) and groups["file"] in run["logs"]:
                return FakeResponse(200, run["logs"][groups["file"]].encode(), {"Content-Type": "text/plain"})
        return FakeResponse(404, b"<Error><Code>BlobNotFound</Code></Error>")

    # --- state changes -------------------------------------------------------------------------------------------
    def _move(self, key: str, status: str, error: str = "") -> None:
        now, run = time.time(), self.runtime[key]
        self.jobs[key]["properties"]["status"] = status
        if status in ("Running", "Finalizing") and run["started"] is None:
            run["started"] = now
        if status in TERMINAL:
            run["ended"] = now
        if error:
            run["error"] = error

    def _find(self, name: str) -> str:
        return next(key for key in self.jobs if key.endswith("/" + name))

    # --- scripting API for tests (thread-safe through the cloud's lock) ----------------------------------------
    def set_state(self, name: str, status: str, *, error: str = "") -> None:
        with self.cloud.lock:
            self._move(self._find(name), status, error)

    def start(self, name: str) -> None:
        self.set_state(name, "Running")

    def complete(self, name: str) -> None:
        self.set_state(name, "Completed")

    def fail(self, name: str, reason: str = DEFAULT_FAILURE) -> None:
        self.set_state(name, "Failed", error=reason)

    def expire(self, name: str) -> None:
        """Azure cancels a job at its limits.timeout: started that long ago, Canceled now."""
        with self.cloud.lock:
            key = self._find(name)
            self.runtime[key]["started"] = time.time() - _timeout_seconds(self.jobs[key]) - 1
            self._move(key, "Canceled")

    def put_log(self, name: str, file: str, lines: list[str]) -> None:
        with self.cloud.lock:
            self.runtime[self._find(name)]["logs"][file] = "".join(f"{line}\n" for line in lines)

    cancel_operation = "CancelJob"

    def is_running(self, name: str) -> bool:
        return self.status_of(name) == "Running"

    def status_of(self, name: str) -> str:
        with self.cloud.lock:
            return self._settle(self._find(name))["properties"]["status"]

    def job(self, name: str) -> dict:
        with self.cloud.lock:
            return json.loads(json.dumps(self.jobs[self._find(name)]))

    def names(self) -> list[str]:
        with self.cloud.lock:
            return [job["name"] for job in self.jobs.values()]

    @staticmethod
    def remote_key(job) -> str:
        return job.remote_name

    def finished_at(self, name: str) -> float | None:
        with self.cloud.lock:
            return self.runtime[self._find(name)]["ended"]

    def jobs_tagged(self, job_id: str) -> list[str]:
        with self.cloud.lock:
            return [job["name"] for job in self.jobs.values()
                    if job["properties"].get("tags", {}).get("train-job-id") == job_id]

    def insert(self, request: dict, *, status: str = "Running") -> None:
        """Add a job as Train would have created it, without a create call (benchmarks seeding thousands)."""
        with self.cloud.lock:
            path, properties = request["job"]["path"], request["job"]["body"]["properties"]
            self.environments[request["environment"]["path"]] = request["environment"]["body"]
            key = path.lower().rsplit("/jobs/", 1)[0] + "/" + path.rsplit("/", 1)[1]
            name = path.rsplit("/", 1)[1]
            now = time.time() - 3600
            self.jobs[key] = {"id": path, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                              "properties": {**properties, "status": status},
                              "systemData": {"createdAt": _iso(now)}, "_sent": properties}
            self.runtime[key] = {"created": now, "started": now, "ended": None, "error": None, "logs": {},
                                 "cancel_at": None}


def standalone(cloud, *, run_seconds: float) -> list[str]:
    """Azure ML for `python -m tests.fakecloud`: every created job runs (after about a second) and
    completes `run_seconds` after its creation; workspaces are created with an ARM PUT (no token)."""
    fake = cloud.add(FakeAzureML(auto_run_seconds=run_seconds)).bind(cloud)
    fake.open_workspace_create = True
    cloud.azureml = fake
    workspace = "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>"
    return [
        f"Azure ML (azure-ml): Entra ID at {cloud.url}/<tenant>/oauth2/v2.0/token (Train's emulator app "
        f"{EMULATOR_CLIENT_ID}), ARM jobs at {cloud.url}{workspace}/jobs/<name>, run history and logs; "
        f"jobs complete {run_seconds:g} s after creation.",
        f"  create a workspace first: curl -X PUT '{cloud.url}{workspace}?api-version={api.WORKSPACES_API_VERSION}' "
        "-H 'Content-Type: application/json' -d '{\"location\": \"westeurope\", \"tags\": {\"train-account\": "
        "\"<account id>\"}}'",
    ]
