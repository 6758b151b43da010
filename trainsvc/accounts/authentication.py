"""REST authentication: `x-api-key` names the caller, `x-selected-account-id` the account acted in.

Outcomes: no key or a bad/revoked/expired key → 401; a missing or malformed account header → 400;
a valid key whose user is not a member of that account → 403. The account header is matched exactly
against the account-id grammar: no trimming, no case folding (" acme" and "ACME" are not "acme")."""

from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from trainsvc.accounts.models import ACCOUNT_ID_MAX_LENGTH, ACCOUNT_ID_RE, Account, ApiKey, Membership

API_KEY_HEADER = "HTTP_X_API_KEY"
ACCOUNT_HEADER = "HTTP_X_SELECTED_ACCOUNT_ID"


@dataclass(frozen=True)
class AccountContext:
    """What `request.auth` holds for an authenticated API request."""

    key: ApiKey
    account: Account
    role: str


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        presented = request.META.get(API_KEY_HEADER)
        if presented is None:
            return None
        key = ApiKey.objects.authenticate(presented)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        account_id = request.META.get(ACCOUNT_HEADER)
        if account_id is None:
            raise exceptions.ValidationError({"x-selected-account-id": ["This header is required."]})
        if len(account_id) > ACCOUNT_ID_MAX_LENGTH or not ACCOUNT_ID_RE.match(account_id):
            raise exceptions.ValidationError(
                {"x-selected-account-id": ["Not a valid account id (lowercase letters, digits and hyphens)."]}
            )
        membership = Membership.objects.select_related("account").filter(user=key.user, account_id=account_id).first()
        if membership is None:
            raise exceptions.PermissionDenied("This API key has no access to that account.")
        key.touch()
        return key.user, AccountContext(key=key, account=membership.account, role=membership.role)

    def authenticate_header(self, request):
        return 'ApiKey header="x-api-key"'
