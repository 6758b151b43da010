"""/v2/ (the version check), /v2/token (Basic GET and OAuth2 form POST), /v2/_catalog."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from registry.auth import (
    CATALOG,
    LoginRefused,
    authorize,
    basic_credentials,
    credentials_check,
    pull_token_claims,
    request_caller,
    scope_string,
    scopes_grant,
    scopes_parse,
)
from registry.errors import RegistryError, registry_view
from registry.http import paginate
from registry.models import Repository
from registry.tokens import token_issue
from trainsvc.accounts.models import Role
from trainsvc.clientip import client_ip

BASIC_CHALLENGE = 'Basic realm="Train registry"'


@registry_view
def version_check(request):
    request_caller(request)
    return JsonResponse({})


def _login_refused(exc: LoginRefused):
    if exc.retry_after:
        return RegistryError("TOOMANYREQUESTS", "too many failed logins; try again later",
                             headers={"Retry-After": str(exc.retry_after)})
    return RegistryError("UNAUTHORIZED", "invalid username (account id) or password (API key)",
                         headers={"WWW-Authenticate": BASIC_CHALLENGE})


def _issue(request, username: str, password: str, scopes) -> dict:
    if (pull := pull_token_claims(username, password)) is not None:
        # A job's pull token, exchanged for a token of the scope the engine asks for: never more than
        # it grants, never valid longer than it is.
        requested = scopes_parse(scopes)
        granted = {resource: actions & pull.access.get(resource, frozenset())
                   for resource, actions in scopes_grant(account_id=username, role=Role.VIEWER,
                                                         requested=requested).items()}
        granted = {resource: actions for resource, actions in granted.items() if actions}
        token, expires_in, issued_at = token_issue(account_id=username, key_pk=pull.key_pk, access=granted,
                                                   not_after=pull.expires_at)
        return {"token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at,
                "scope": scope_string(granted)}
    try:
        key, role = credentials_check(username=username, password=password, address=client_ip(request))
    except LoginRefused as exc:
        raise _login_refused(exc) from exc
    granted = scopes_grant(account_id=username, role=role, requested=scopes_parse(scopes))
    token, expires_in, issued_at = token_issue(account_id=username, key_pk=key.pk, access=granted)
    return {"token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at,
            "scope": scope_string(granted)}


@never_cache  # a bearer token is a credential: no proxy or client cache may keep it (RFC 6749 §5.1)
@registry_view
def token(request):
    """Basic GET (docker, skopeo, podman) or the OAuth2 password grant by POST. The grant is the
    requested scopes cut down to the caller's ceiling; an empty grant is a token for /v2/ only.
    No refresh tokens are issued (docs/decisions/0023-no-registry-refresh-tokens.md)."""
    if request.method == "GET":
        credentials = basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            raise RegistryError("UNAUTHORIZED", "send the account id and an API key with Basic authentication",
                                headers={"WWW-Authenticate": BASIC_CHALLENGE})
        # `account=` is the client's hint; the Basic username is what counts.
        return JsonResponse(_issue(request, *credentials, request.GET.getlist("scope")))
    if request.method == "POST":
        form = request.POST
        grant_type = form.get("grant_type", "")
        if grant_type != "password":
            return JsonResponse({"error": "unsupported_grant_type",
                                 "error_description": "use grant_type=password with an API key"}, status=400)
        body = _issue(request, form.get("username", ""), form.get("password", ""), [form.get("scope", "")])
        body.pop("token")
        return JsonResponse(body)
    raise RegistryError("UNSUPPORTED", status=405, headers={"Allow": "GET, POST"})


@registry_view
def catalog(request):
    """Repositories of the caller's account only, whoever asks."""
    caller = authorize(request, [(CATALOG, "*")])
    names, link = paginate(Repository.objects.listed().filter(account_id=caller.account_id), "name", request,
                           path="/v2/_catalog")
    response = JsonResponse({"repositories": names})
    if link:
        response["Link"] = link
    return response


@registry_view
def unknown(request, rest=""):
    raise RegistryError("NAME_UNKNOWN", "no such registry endpoint", status=404)
