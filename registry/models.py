"""Registry metadata: repositories, content-addressed blobs and their per-repository links, manifests,
tags with their history, upload sessions, and the failed-login counters of the token endpoint.

Blob bytes live in the blob store (registry/store.py); manifests are small (≤ 4 MiB) and kept here,
byte for byte, because their digest is the digest of exactly those bytes."""

import uuid

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from trainsvc.accounts.models import Account


class Repository(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="repositories")
    name = models.CharField(max_length=255, unique=True, help_text="<account>/<path>")
    created_at = models.DateTimeField(default=timezone.now)
    last_push_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self):
        return self.name


class Blob(models.Model):
    """One stored object per digest, whichever repositories link to it."""

    digest = models.CharField(max_length=71, unique=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.digest

    # Garbage collection deletes a link or a blob only while holding its Blob row lock, and so does
    # everything that links a blob or names it in a manifest (docs/decisions/0038-*.md).

    @classmethod
    def lock(cls, digests) -> list[int]:
        """Lock the rows of `digests` that exist until the end of the caller's transaction (in id
        order, so two lockers never deadlock); returns their ids. Read anything that must hold under
        the lock in a later statement: PostgreSQL re-checks only the locked row, not joins."""
        return list(cls.objects.select_for_update().filter(digest__in=set(digests)).order_by("pk")
                    .values_list("pk", flat=True))

    @classmethod
    def lock_or_create(cls, *, digest: str, size: int) -> "Blob":
        """The row of `digest`, created if missing, locked until the end of the caller's transaction."""
        for _ in range(3):
            blob = cls.objects.select_for_update().filter(digest=digest).first()
            if blob is not None:
                return blob
            try:
                with transaction.atomic():
                    return cls.objects.create(digest=digest, size=size)
            except IntegrityError:
                continue  # created meanwhile: lock that row
        return cls.objects.select_for_update().get(digest=digest)


class RepositoryBlob(models.Model):
    """A blob is visible in a repository only through this link, made by a push or a mount."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="blob_links")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="links")
    created_at = models.DateTimeField(default=timezone.now)
    # The latest push or mount of this blob into this repository. Garbage collection keeps a link that
    # no manifest of the repository references for a grace period from here, so a client can upload
    # blobs now and put the manifest naming them later (registry/gc.py).
    pushed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "blob"], name="one_link_per_repository_blob")]

    def __str__(self):
        return f"{self.blob_id} in {self.repository_id}"


class Manifest(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="manifests")
    digest = models.CharField(max_length=71)
    media_type = models.CharField(max_length=200)
    size = models.BigIntegerField()
    content = models.BinaryField()
    # For the referrers API: the manifest this one refers to, and its artifact type.
    subject_digest = models.CharField(max_length=71, blank=True, db_index=True)
    artifact_type = models.CharField(max_length=200, blank=True)
    # Sum of config and layer sizes (image) or of the children's totals (index), for listings.
    total_size = models.BigIntegerField(default=0)
    pushed_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "digest"], name="one_manifest_per_digest")]
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["digest"])]

    def __str__(self):
        return f"{self.repository.name}@{self.digest}"


class ManifestReference(models.Model):
    """A digest a stored manifest names, recorded when it is put, so garbage collection finds what is
    referenced without parsing every manifest: `blob` for an image's config and layers (these keep
    blobs alive), `manifest` for an index's children (recorded so every manifest has rows)."""

    BLOB, MANIFEST = "blob", "manifest"
    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="references")
    digest = models.CharField(max_length=71)
    kind = models.CharField(max_length=8, choices=[(BLOB, "blob"), (MANIFEST, "manifest")])

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "digest", "kind"], name="one_reference_per_digest")]
        indexes = [models.Index(fields=["digest", "kind"])]

    def __str__(self):
        return f"{self.manifest_id} → {self.digest}"

    @classmethod
    def record(cls, manifest: Manifest, *, blobs, children) -> None:
        rows = [cls(manifest=manifest, digest=digest, kind=cls.BLOB) for digest in set(blobs)]
        rows += [cls(manifest=manifest, digest=digest, kind=cls.MANIFEST) for digest in set(children)]
        cls.objects.bulk_create(rows, ignore_conflicts=True)


class Tag(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="tags")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="one_tag_per_repository_name")]
        ordering = ["repository__name", "name"]

    def __str__(self):
        return f"{self.repository.name}:{self.name}"


class TagEvent(models.Model):
    """Every move of a tag. Keyed by repository and tag name, so history outlives a deleted tag."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="tag_events")
    tag = models.CharField(max_length=128)
    old_digest = models.CharField(max_length=71, blank=True)
    new_digest = models.CharField(max_length=71, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["repository", "tag", "-created_at"])]

    def __str__(self):
        return f"{self.repository.name}:{self.tag} {self.old_digest or '∅'} → {self.new_digest or '∅'}"


def upload_expiry():
    return timezone.now() + timezone.timedelta(seconds=settings.TRAIN_REGISTRY_UPLOAD_TTL_SECONDS)


class Upload(models.Model):
    """A blob upload session, bound to one repository (and so one account). Everything a gateway needs
    to continue it is here, so each request of a session may reach a different gateway process."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="uploads")
    offset = models.BigIntegerField(default=0)
    # The serialised SHA-256 state over bytes [0, offset) (registry/hashing.py), or empty when the
    # digest must be recomputed from the stored bytes at completion.
    hash_state = models.BinaryField(default=b"", blank=True)
    # Store-specific progress (the S3 multipart upload id and part count).
    store_state = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=upload_expiry, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"upload {self.id} to {self.repository_id}"

    def reclaim(self, *, idle_before, now) -> bool:
        """Delete this session's row if it is still idle since `idle_before` (or expired at `now`):
        False when a request touched it meanwhile. The caller discards the stored bytes only after
        winning, so a live session never loses its bytes."""
        stale = models.Q(updated_at__lt=idle_before) | models.Q(expires_at__lte=now)
        won = Upload.objects.filter(stale, pk=self.pk, offset=self.offset, updated_at=self.updated_at).delete()[0]
        return won > 0


class LoginFailure(models.Model):
    """Failed registry logins per (user, source network) in the current window; updated atomically."""

    key = models.CharField(max_length=200, unique=True)
    count = models.IntegerField(default=0)
    window_start = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.key}: {self.count}"
