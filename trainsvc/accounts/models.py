"""Accounts (tenants), who belongs to them, and the API keys people use to act in them."""

import hashlib
import hmac
import re
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

# An account id is a registry path component too (`<host>/<account>/<repo>`), so it follows the OCI
# path-component grammar, restricted to lowercase letters, digits and single hyphens.
ACCOUNT_ID_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
ACCOUNT_ID_RE = re.compile(rf"\A{ACCOUNT_ID_PATTERN}\Z")
ACCOUNT_ID_MAX_LENGTH = 63

# Keys look like `trn_<12 base32 id>_<40 url-safe secret>`: the prefix makes them findable by secret
# scanners, the id is the lookup key, and only a SHA-256 of the secret is stored. A random 240-bit
# secret needs no slow password hash.
KEY_PREFIX = "trn"
KEY_ID_LENGTH = 12
KEY_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
KEY_RE = re.compile(r"\Atrn_([a-z2-7]{12})_([A-Za-z0-9_-]{40})\Z")
# Writing last_used_at on every request would turn every read into a write; once a minute is enough.
LAST_USED_RESOLUTION_SECONDS = 60


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Account(models.Model):
    id = models.CharField(
        primary_key=True,
        max_length=ACCOUNT_ID_MAX_LENGTH,
        validators=[RegexValidator(rf"\A{ACCOUNT_ID_PATTERN}\Z", "Lowercase letters, digits and single hyphens.")],
    )
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.id


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="one_membership_per_user_account")]
        ordering = ["account_id", "user_id"]

    def __str__(self):
        return f"{self.user} in {self.account_id} ({self.role})"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# Compared against when the key id is unknown, so an unknown id costs the same work as a wrong secret.
_DUMMY_HASH = hash_secret("x" * 40)


class ApiKeyQuerySet(models.QuerySet):
    def authenticate(self, presented: str):
        """The active key matching `presented`, or None. Looks up by id, compares hashes in constant time."""
        match = KEY_RE.match(presented or "")
        if not match:
            return None
        key_id, secret = match.groups()
        key = self.select_related("user").filter(key_id=key_id).first()
        expected = key.secret_hash if key else _DUMMY_HASH
        if not hmac.compare_digest(expected, hash_secret(secret)) or key is None:
            return None
        return key if key.is_active() else None


class ApiKey(models.Model):
    key_id = models.CharField(max_length=KEY_ID_LENGTH, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{KEY_PREFIX}_{self.key_id}_…"

    @classmethod
    def issue(cls, *, user, name="", expires_at=None):
        """Create a key and return (key, plaintext). The plaintext exists only in this return value."""
        key_id = "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
        secret = secrets.token_urlsafe(30)
        key = cls.objects.create(
            key_id=key_id, secret_hash=hash_secret(secret), user=user, name=name, expires_at=expires_at
        )
        return key, f"{KEY_PREFIX}_{key_id}_{secret}"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None or not self.user.is_active:
            return False
        return self.expires_at is None or self.expires_at > now

    def revoke(self) -> bool:
        """Revoke the key; returns False if it was already revoked."""
        return bool(ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()))

    def touch(self, now=None):
        now = now or timezone.now()
        stale_before = now - timezone.timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
        if self.last_used_at is None or self.last_used_at < stale_before:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
