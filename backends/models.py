from django.conf import settings
from django.db import models
from django.utils import timezone


class BackendConfig(models.Model):
    """An account's settings for one backend: project/region/role/workspace and the identity Train
    assumes. Never a long-lived cloud secret (those stay in Train's own environment)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="backend_configs")
    backend = models.CharField(max_length=32)
    config = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "backend"], name="one_config_per_account_backend")]
        ordering = ["account_id", "backend"]
        verbose_name = "backend configuration"

    def __str__(self):
        return f"{self.backend} for {self.account_id}"
