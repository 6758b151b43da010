"""OpenAPI description of how API requests authenticate, for drf-spectacular (imported at app start)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Both headers go together: the key names the caller, the account header the account acted in."""

    target_class = "trainsvc.accounts.authentication.ApiKeyAuthentication"
    name = ["ApiKey", "SelectedAccount"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "x-api-key",
             "description": "An API key, trn_<id>_<secret>, from `manage.py create_api_key`."},
            {"type": "apiKey", "in": "header", "name": "x-selected-account-id",
             "description": "The id of the account the request acts in; the key's user must be a member."},
        ]
