from rest_framework.permissions import SAFE_METHODS, BasePermission

from trainsvc.accounts.authentication import AccountContext
from trainsvc.accounts.models import Role

# What each role may do: viewers read, members also submit and cancel, admins also configure.
ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


class AccountRolePermission(BasePermission):
    """Reads need any role; writes need `view.write_role` (default: member)."""

    message = "Your role in this account does not allow this."

    def has_permission(self, request, view):
        context = request.auth
        if not isinstance(context, AccountContext):
            return False
        if not hasattr(view, request.method.lower()):
            # The route does not take this method: let the view answer 405, which says what is wrong,
            # rather than a 403 that suggests a stronger role would help.
            return True
        if request.method in SAFE_METHODS:
            return True
        needed = getattr(view, "write_role", Role.MEMBER)
        return ROLE_RANK[context.role] >= ROLE_RANK[needed]
