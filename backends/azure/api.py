"""Where Azure ML's REST API lives for one workspace, and the API versions Train speaks: pinned here,
in one place, so an upgrade is one reviewed change (and the test fake accepts exactly these).

Train calls three surfaces, all with one Entra ID token for ARM (`https://management.azure.com`):
- ARM, for the workspace, environment versions and jobs (`…/workspaces/<ws>/…?api-version=`);
- the workspace's run-history data plane (its `api` endpoint, found through the workspace's
  `discoveryUrl`), for a job's failure text and its log files;
- the log files themselves: SAS URLs run history hands out, read without Train's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

# The GA ARM API versions of Microsoft.MachineLearningServices Train was written against.
JOBS_API_VERSION = "2024-04-01"
ENVIRONMENTS_API_VERSION = "2024-04-01"
WORKSPACES_API_VERSION = "2024-04-01"
ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
PROVIDER = "Microsoft.MachineLearningServices"
RUN_HISTORY_PREFIX = "/history/v1.0"
CONSOLE = "https://ml.azure.com"


@dataclass(frozen=True)
class Workspace:
    """One Azure ML workspace, as an account configured it."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def arm_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/{PROVIDER}/workspaces/{self.name}")

    def compute_id(self, compute: str) -> str:
        return f"{self.arm_id}/computes/{compute}"

    def environment_version_id(self, name: str, version: str) -> str:
        return f"{self.arm_id}/environments/{name}/versions/{version}"

    def job_path(self, name: str) -> str:
        return f"{self.arm_id}/jobs/{quote(name, safe='')}"

    def run_details_path(self, name: str) -> str:
        """The run-history path of a job's details (failure text, times, log files)."""
        return f"{RUN_HISTORY_PREFIX}{self.arm_id}/runs/{quote(name, safe='')}/details"

    def console_url(self, job_name: str, tenant_id: str) -> str:
        wsid = (f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
                f"/workspaces/{self.name}")
        return f"{CONSOLE}/runs/{quote(job_name, safe='')}?wsid={wsid}&tid={tenant_id}"
