"""Which Train account may use a tenant service account: the confused-deputy guard (decision 0071).

Train calls Google as one identity for every account. Any account admin can type any service account
email into its configuration, and Train could impersonate every tenant service account that granted
its identity roles/iam.serviceAccountTokenCreator. So the grant alone does not say for whom: the
service account must also name the Train account it serves, in its description
(`train-account=<account id>`), which only the owner of the service account's project can write.
On PUT Train impersonates the account (proving the grant) and reads that description with the
impersonated token (the service account needs iam.serviceAccounts.get on itself); a description that
names no account, or another one, is refused.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from backends.base import SpecError
from backends.gcp.config import OWNER_MARKER

FIELD = "impersonate_service_account"
MARKER_RE = re.compile(rf"(?:^|[\s,;]){re.escape(OWNER_MARKER)}(?P<account>[A-Za-z0-9_-]+)")


def owners(description: str) -> set[str]:
    """The Train accounts a service account description names."""
    return {match["account"] for match in MARKER_RE.finditer(description or "")}


def verify_owner(config: dict, *, account_id: str) -> None:
    """SpecError on `impersonate_service_account` unless Train can impersonate it and its description
    names `account_id`."""
    from backends.gcp.errors import GoogleApiError, backend_error
    from backends.gcp.session import google_session

    email = config[FIELD]
    session = google_session(config)
    url = f"{session.target.iam_url}/v1/projects/-/serviceAccounts/{quote(email, safe='@.')}"
    try:
        record = session.call("GET", url)
    except GoogleApiError as exc:
        if exc.http_status in (403, 404):
            raise SpecError({FIELD: f"Train cannot read {email} as itself ({exc.status or exc.http_status}: "
                                    f"{exc.message}). Grant the service account roles/iam.serviceAccountViewer "
                                    "on itself."}) from exc
        raise SpecError({FIELD: f"Could not verify {email}: {backend_error(exc, 'read it').message}"}) from exc
    except Exception as exc:  # token refused, Google unreachable: nothing was stored, say why
        raise SpecError({FIELD: f"Could not verify {email}: {backend_error(exc, 'impersonate it').message}"}) from exc
    named = owners(record.get("description", ""))
    if named != {account_id}:
        shown = ", ".join(sorted(named)) or "no Train account"
        raise SpecError({FIELD: f"{email} names {shown} in its description; add \"{OWNER_MARKER}{account_id}\" "
                                f"to its description so Train may use it for this account only."})
