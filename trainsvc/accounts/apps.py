from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "trainsvc.accounts"
    label = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self):
        import trainsvc.api.schema  # noqa: F401 (registers the OpenAPI description of ApiKeyAuthentication)
