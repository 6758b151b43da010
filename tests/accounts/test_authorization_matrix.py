"""Who may call what: every /v1 route in the URL conf, every method it allows, every kind of caller.

The routes are read from the resolver, so a route added later (e.g. /v1/images...) is covered for
no key, a bad key and a non-member without editing this file. Object ids come from OBJECT_KINDS, keyed
by the URL kwarg; an unknown kwarg gets a placeholder, and the cross-account case then does not apply.
"""

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.urls import URLResolver, get_resolver
from django.utils import timezone

from backends.models import BackendConfig
from jobs.models import Job, JobEvent, JobStatus
from tests.support.jobs import make_job, queued_tasks
from trainsvc.accounts.models import ApiKey, Role
from trainsvc.accounts.permissions import ROLE_RANK

PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/v1/docs"})
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GROUP_RE = re.compile(r"\(\?P<(\w+)>([^)]*)\)")
# Tried in order for a kwarg this file does not know; the first that fits the route's pattern is used.
PLACEHOLDERS = ("placeholder", "1")
MISSING_JOB_ID = "job_" + "0" * 32
# The routes the service has today; the walker must find at least these.
KNOWN_TEMPLATES = {
    "/v1/jobs", "/v1/jobs/{pk}", "/v1/jobs/{pk}/cancel", "/v1/jobs/{pk}/events", "/v1/jobs/{pk}/logs",
    "/v1/backends", "/v1/backends/{name}",
}


@dataclass(frozen=True)
class ObjectKind:
    attribute: str  # the World attribute whose value goes in the URL
    tenant_owned: bool  # the value names a row of acme's that another account must not reach


OBJECT_KINDS = {
    "pk": ObjectKind("acme_job_id", tenant_owned=True),
    "name": ObjectKind("backend_name", tenant_owned=False),
}


@dataclass(frozen=True)
class Route:
    template: str  # "/v1/jobs/{pk}/cancel"
    groups: tuple[tuple[str, str], ...]  # (kwarg, its regex)
    methods: frozenset[str]
    write_role: str

    def __str__(self):
        return self.template

    @property
    def kwargs(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.groups)

    @property
    def tenant_owned(self) -> bool:
        return any(OBJECT_KINDS.get(name, ObjectKind("", False)).tenant_owned for name in self.kwargs)

    def values(self, world) -> dict[str, str]:
        out = {}
        for name, pattern in self.groups:
            if name in OBJECT_KINDS:
                out[name] = getattr(world, OBJECT_KINDS[name].attribute)
            else:
                out[name] = next((p for p in PLACEHOLDERS if re.fullmatch(pattern, p)), PLACEHOLDERS[0])
        return out

    def path(self, world, **override) -> str:
        return self.template.format(**{**self.values(world), **override})


def _allowed_methods(callback) -> frozenset[str]:
    actions = getattr(callback, "actions", None)  # a DRF viewset route: exactly the bound actions
    cls = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if actions:
        methods = {method.upper() for method in actions} | {"OPTIONS"}
    elif cls is not None:
        methods = {method.upper() for method in cls.http_method_names if hasattr(cls, method)}
    else:
        methods = {"GET"}  # a function view: at least probe it
    # Django and DRF answer HEAD wherever they answer GET.
    return frozenset(methods | ({"HEAD"} if "GET" in methods else set()))


def _walk(patterns, prefix=""):
    """(regex of the whole path, view, whether the regex ends the path) for every leaf pattern."""
    for pattern in patterns:
        raw = pattern.pattern.regex.pattern
        part = raw.removeprefix("^").removesuffix(r"\Z").removesuffix("$")
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + part)
        else:
            yield "/" + prefix + part, pattern.callback, raw.endswith((r"\Z", "$"))


def v1_routes() -> tuple[list[Route], list[str]]:
    """(routes under /v1/, regexes that could not be turned into a URL). A pattern that does not end
    the path is a catch-all for unknown paths, not a route (see test_an_unknown_v1_path_is_a_json_404)."""
    routes, unbuildable = [], []
    for regex, callback, ends in _walk(get_resolver().url_patterns):
        if not regex.startswith("/v1/") or not ends:
            continue
        groups = tuple(GROUP_RE.findall(regex))
        template = re.sub(r"\\(.)", r"\1", GROUP_RE.sub(lambda m: "{" + m[1] + "}", regex))
        if re.search(r"[()\[\]?*+|^$]", template):
            unbuildable.append(regex)
            continue
        cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        routes.append(Route(template, groups, _allowed_methods(callback), getattr(cls, "write_role", Role.MEMBER)))
    return routes, unbuildable


ROUTES, UNBUILDABLE = v1_routes()
PROTECTED = [route for route in ROUTES if route.template not in PUBLIC_PATHS]
CALLS = [pytest.param(route, method, id=f"{method} {route}") for route in PROTECTED for method in sorted(route.methods)]
OBJECT_CALLS = [
    pytest.param(route, method, id=f"{method} {route}")
    for route in PROTECTED if route.tenant_owned for method in sorted(route.methods - {"OPTIONS"})
]
OBJECT_OPTIONS = [pytest.param(route, id=str(route)) for route in PROTECTED if route.tenant_owned]
DISALLOWED = [
    pytest.param(route, method, id=f"{method} {route}")
    for route in PROTECTED for method in ALL_METHODS if method not in route.methods
]
WRITES = [
    pytest.param(route, method, id=f"{method} {route}")
    for route in PROTECTED for method in sorted(route.methods & UNSAFE_METHODS)
]
ADMIN_WRITES = [
    pytest.param(route, method, id=f"{method} {route}")
    for route in PROTECTED if ROLE_RANK[route.write_role] > ROLE_RANK[Role.MEMBER]
    for method in sorted(route.methods & UNSAFE_METHODS)
]
READABLE = [pytest.param(route, id=str(route)) for route in PROTECTED
            if "GET" in route.methods and set(route.kwargs) <= set(OBJECT_KINDS)]


@dataclass
class World:
    operator: object
    member: object
    viewer: object
    outsider: object
    acme_job_id: str
    backend_name: str = "local"


@pytest.fixture
def world(operator, member, viewer, outsider):
    return World(operator, member, viewer, outsider, acme_job_id=make_job(operator.account).id)


def call(api, method, path, headers):
    body = {"data": "{}", "content_type": "application/json"} if method in UNSAFE_METHODS else {}
    return api.generic(method, path, **body, **headers)


def acme_job_snapshot(world):
    job = Job.objects.get(pk=world.acme_job_id)
    return job.status, job.cancel_requested_at, JobEvent.objects.filter(job=job).count(), len(queued_tasks())


def test_the_walker_finds_every_known_route():
    assert KNOWN_TEMPLATES <= {route.template for route in ROUTES}
    assert UNBUILDABLE == [], "teach v1_routes() to build a URL for these routes"


def test_the_job_routes_allow_exactly_their_methods():
    methods = {route.template: route.methods for route in ROUTES}
    assert methods["/v1/jobs"] == {"GET", "HEAD", "POST", "OPTIONS"}
    assert methods["/v1/jobs/{pk}/cancel"] == {"POST", "OPTIONS"}
    assert methods["/v1/backends/{name}"] == {"GET", "HEAD", "PUT", "OPTIONS"}


@pytest.mark.parametrize("headers", [{}, {"HTTP_X_API_KEY": "nope"}, "operator"])
def test_an_unknown_v1_path_is_a_json_404(api, world, headers):
    headers = world.operator.headers if headers == "operator" else headers
    response = api.get("/v1/no-such-thing", **headers)
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
def test_public_docs_answer_without_a_key(db, api, path):
    assert path in {route.template for route in ROUTES}
    assert api.get(path).status_code == 200


@pytest.mark.parametrize("route", READABLE)
def test_a_member_of_the_account_can_read_every_route(api, world, route):
    assert api.get(route.path(world), **world.operator.headers).status_code == 200


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_no_key_is_401(api, world, route, method):
    response = call(api, method, route.path(world), {"HTTP_X_SELECTED_ACCOUNT_ID": "acme"})
    assert response.status_code == 401
    if method != "HEAD":
        assert "detail" in response.json()


@pytest.mark.parametrize("kind", ["garbage", "unknown key id", "revoked", "expired"])
@pytest.mark.parametrize(("route", "method"), CALLS)
def test_a_bad_key_is_401(api, world, route, method, kind):
    user = world.operator.key.user
    if kind == "garbage":
        plaintext = "not-a-key"
    elif kind == "unknown key id":
        plaintext = "trn_aaaaaaaaaaaa_" + "A" * 40
    elif kind == "revoked":
        key, plaintext = ApiKey.issue(user=user)
        key.revoke()
    else:
        _, plaintext = ApiKey.issue(user=user, expires_at=timezone.now() - timedelta(seconds=1))
    before = acme_job_snapshot(world)
    response = call(api, method, route.path(world),
                    {"HTTP_X_API_KEY": plaintext, "HTTP_X_SELECTED_ACCOUNT_ID": "acme"})
    assert response.status_code == 401
    assert acme_job_snapshot(world) == before


@pytest.mark.parametrize(("route", "method"), CALLS)
def test_a_key_without_membership_in_the_selected_account_is_403(api, world, route, method):
    headers = {**world.outsider.headers, "HTTP_X_SELECTED_ACCOUNT_ID": "acme"}
    before = acme_job_snapshot(world)
    assert call(api, method, route.path(world), headers).status_code == 403
    assert acme_job_snapshot(world) == before


@pytest.mark.parametrize(("route", "method"), OBJECT_CALLS)
def test_another_accounts_object_is_404(api, world, route, method):
    before = acme_job_snapshot(world)
    response = call(api, method, route.path(world), world.outsider.headers)
    assert response.status_code == 404
    assert acme_job_snapshot(world) == before


@pytest.mark.parametrize("route", OBJECT_OPTIONS)
def test_options_on_another_accounts_object_answers_as_for_a_missing_one(api, world, route):
    theirs = api.options(route.path(world), **world.outsider.headers)
    missing = api.options(route.path(world, pk=MISSING_JOB_ID), **world.outsider.headers)
    assert (theirs.status_code, theirs.content) == (missing.status_code, missing.content)


@pytest.mark.parametrize(("route", "method"), DISALLOWED)
def test_a_method_the_route_does_not_allow_is_405(api, world, route, method):
    before = acme_job_snapshot(world)
    assert call(api, method, route.path(world), world.operator.headers).status_code == 405
    assert acme_job_snapshot(world) == before


@pytest.mark.parametrize(("route", "method"), WRITES)
def test_a_viewer_cannot_write(api, world, route, method):
    before = acme_job_snapshot(world), Job.objects.count(), BackendConfig.objects.count()
    response = call(api, method, route.path(world), world.viewer.headers)
    assert response.status_code == 403
    assert (acme_job_snapshot(world), Job.objects.count(), BackendConfig.objects.count()) == before


@pytest.mark.parametrize(("route", "method"), ADMIN_WRITES)
def test_a_member_cannot_make_admin_writes(api, world, route, method):
    response = call(api, method, route.path(world), world.member.headers)
    assert response.status_code == 403
    assert not BackendConfig.objects.exists()


def test_member_put_of_the_local_backend_is_403(api, world):
    response = api.put("/v1/backends/local", {"config": {}}, format="json", **world.member.headers)
    assert response.status_code == 403
    assert not BackendConfig.objects.filter(account=world.member.account).exists()


# --- update/delete by id of another tenant's row (the Harbor CVE class) -------------------------------

@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_outsider_cannot_change_or_delete_an_acme_job_by_id(api, world, method):
    before = acme_job_snapshot(world)
    body = {"data": '{"status": "CANCELED", "name": "mine"}', "content_type": "application/json"}
    theirs = api.generic(method, f"/v1/jobs/{world.acme_job_id}", **body, **world.outsider.headers)
    missing = api.generic(method, f"/v1/jobs/{MISSING_JOB_ID}", **body, **world.outsider.headers)
    assert theirs.status_code in (404, 405)
    assert theirs.status_code == missing.status_code  # nothing tells the outsider the id exists
    job = Job.objects.get(pk=world.acme_job_id)
    assert (job.name, job.account_id) == ("sft-run", "acme")
    assert acme_job_snapshot(world) == before


def test_outsider_cannot_cancel_an_acme_job_by_id(api, world):
    response = api.post(f"/v1/jobs/{world.acme_job_id}/cancel", **world.outsider.headers)
    assert response.status_code == 404
    job = Job.objects.get(pk=world.acme_job_id)
    assert job.status == JobStatus.PENDING
    assert job.cancel_requested_at is None
    assert not JobEvent.objects.filter(job=job).exists()


def test_outsider_configuring_a_backend_changes_only_their_own_account(api, world):
    acme_row = BackendConfig.objects.create(account=world.operator.account, backend="local", config={},
                                            updated_by=world.operator.key.user)
    response = api.put("/v1/backends/local", {"config": {}}, format="json", **world.outsider.headers)
    assert response.status_code == 200
    acme_row.refresh_from_db()
    assert acme_row.updated_by == world.operator.key.user
    assert BackendConfig.objects.get(account=world.outsider.account, backend="local").updated_by \
        == world.outsider.key.user
