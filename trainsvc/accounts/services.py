"""Workflows over accounts: creating them and issuing keys (used by the commands and the admin)."""

from django.contrib.auth import get_user_model
from django.db import transaction

from trainsvc.accounts.models import ACCOUNT_ID_RE, Account, ApiKey, Membership, Role


class AccountError(Exception):
    pass


def account_create(*, account_id: str, name: str = "") -> Account:
    if not ACCOUNT_ID_RE.match(account_id) or len(account_id) > 63:
        raise AccountError(
            f"{account_id!r} is not a valid account id: use 1-63 lowercase letters, digits and single hyphens."
        )
    account, _ = Account.objects.get_or_create(id=account_id, defaults={"name": name or account_id})
    return account


def service_user_for(account: Account, role: str = Role.ADMIN):
    """The non-login user that owns an account's keys of `role` when no person is named.

    A role belongs to the membership (user, account), so keys of different roles need different
    users: with one service user, issuing an admin key would turn every viewer key into an admin key.
    The "." cannot occur in an account id, so `svc-a.viewer` never names account a-viewer's user."""
    username = f"svc-{account.id}" if role == Role.ADMIN else f"svc-{account.id}.{role}"
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def api_key_create(*, account: Account, role: str | None = None, username: str | None = None, name: str = ""):
    """Issue a key for `username` (or the account's service user for the role) in `account`.

    Returns (key, plaintext). With no `role`, a user who is already a member keeps their role and a new
    membership is admin; a `role` given explicitly is applied to the membership."""
    if role is not None and role not in Role.values:
        raise AccountError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    if username:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise AccountError(f"No user named {username!r}.")
    else:
        user = service_user_for(account, role or Role.ADMIN)
    membership, _ = Membership.objects.get_or_create(
        user=user, account=account, defaults={"role": role or Role.ADMIN}
    )
    if role and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return ApiKey.issue(user=user, name=name or f"{account.id} {membership.role}")
