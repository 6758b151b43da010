"""Registry metadata: repositories, content-addressed blobs and their per-repository links, manifests,
tags with their history, upload sessions, and the failed-login counters of the token endpoint.

Blob bytes live in the blob store (registry/store.py); manifests are small (≤ 4 MiB) and kept here,
byte for byte, because their digest is the digest of exactly those bytes."""

import uuid

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from registry.reference import DIGEST_MAX_LENGTH  # fits sha256 and sha512 digests
from trainsvc.accounts.models import Account


class RepositoryQuerySet(models.QuerySet):
    def listed(self):
        """Repositories that hold a manifest: what listings show. A push that stored blobs and then
        failed (or was abandoned) leaves its repository row behind, but nothing anyone could pull."""
        return self.filter(models.Exists(Manifest.objects.filter(repository=models.OuterRef("pk"))))


class Repository(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="repositories")
    name = models.CharField(max_length=255, unique=True, help_text="<account>/<path>")
    created_at = models.DateTimeField(default=timezone.now)
    last_push_at = models.DateTimeField(null=True, blank=True)

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self):
        return self.name


class Blob(models.Model):
    """One stored object per digest, whichever repositories link to it."""

    digest = models.CharField(max_length=DIGEST_MAX_LENGTH, unique=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # Set by `manage.py registry_verify` when the stored bytes no longer hash to the digest: the blob
    # is not served, and the next verified push of that digest replaces the bytes and clears this.
    quarantined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.digest

    def quarantine(self) -> bool:
        """Stop serving this blob; False when it was already quarantined."""
        now = timezone.now()
        won = Blob.objects.filter(pk=self.pk, quarantined_at__isnull=True).update(quarantined_at=now)
        if won:
            self.quarantined_at = now
        return bool(won)

    def quarantine_lift(self) -> bool:
        """Serve this blob again (its bytes were just replaced by a verified push); False when it was
        not quarantined."""
        won = Blob.objects.filter(pk=self.pk, quarantined_at__isnull=False).update(quarantined_at=None)
        self.quarantined_at = None
        return bool(won)

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
    def lock_or_create(cls, *, digest: str, size: int) -> tuple["Blob", bool]:
        """(the row of `digest`, whether this call created it), locked until the end of the caller's
        transaction."""
        for _ in range(3):
            blob = cls.objects.select_for_update().filter(digest=digest).first()
            if blob is not None:
                return blob, False
            try:
                with transaction.atomic():
                    return cls.objects.create(digest=digest, size=size), True
            except IntegrityError:
                continue  # created meanwhile: lock that row
        return cls.objects.select_for_update().get(digest=digest), False


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
    digest = models.CharField(max_length=DIGEST_MAX_LENGTH)
    media_type = models.CharField(max_length=200)
    size = models.BigIntegerField()
    content = models.BinaryField()
    # For the referrers API: the manifest this one refers to, and its artifact type.
    subject_digest = models.CharField(max_length=DIGEST_MAX_LENGTH, blank=True, db_index=True)
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
    digest = models.CharField(max_length=DIGEST_MAX_LENGTH)
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
    old_digest = models.CharField(max_length=DIGEST_MAX_LENGTH, blank=True)
    new_digest = models.CharField(max_length=DIGEST_MAX_LENGTH, blank=True)
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
    to continue it is here, so each request of a session may reach a different gateway process.

    A request writes bytes only while it holds the session's lease (docs/decisions/0032): it wins
    `lease_acquire` at the committed offset first, and its bytes count only once `lease_commit` (by
    the same token) moves the offset. A holder that dies keeps the lease until it expires; the next
    holder starts again at the committed offset."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="uploads")
    offset = models.BigIntegerField(default=0)
    # The serialised SHA-256 state over bytes [0, offset) (registry/hashing.py), or empty when the
    # digest must be recomputed from the stored bytes at completion.
    hash_state = models.BinaryField(default=b"", blank=True)
    # Store-specific progress (the S3 multipart upload id, its committed parts and tail).
    store_state = models.JSONField(default=dict, blank=True)
    # The request that may write now (empty: none), and until when its claim holds.
    lease_token = models.CharField(max_length=32, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # An expired lease was taken over at least once. Its holder may have lived on and written after
    # that, so the filesystem store's bytes are read back and hashed before they are promoted.
    lease_taken_over = models.BooleanField(default=False)
    # Bytes this session may occupy in the store, reserved against the account's quota before they
    # are written (≥ offset; more while a request streams, or after one died mid-write).
    reserved = models.BigIntegerField(default=0)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=upload_expiry, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"upload {self.id} to {self.repository_id}"

    def _mine(self, token: str):
        return Upload.objects.filter(pk=self.pk, lease_token=token)

    def lease_acquire(self, *, token: str, seconds: float) -> bool:
        """Claim a free lease, to write at the committed offset this object holds. False when the
        lease is held (live or expired), or the offset has moved since this row was read."""
        expires = timezone.now() + timezone.timedelta(seconds=seconds)
        won = Upload.objects.filter(pk=self.pk, offset=self.offset, lease_token="").update(
            lease_token=token, lease_expires_at=expires)
        return self._leased(won, token, expires)

    def lease_take_over(self, *, token: str, seconds: float) -> bool:
        """Claim a lease whose holder let it expire (it died, or stalls), at the committed offset this
        object holds, and mark the upload as taken over. False when there is no such lease."""
        now = timezone.now()
        expires = now + timezone.timedelta(seconds=seconds)
        won = Upload.objects.filter(pk=self.pk, offset=self.offset, lease_expires_at__lte=now).exclude(
            lease_token="").update(lease_token=token, lease_expires_at=expires, lease_taken_over=True)
        return self._leased(won, token, expires)

    def _leased(self, won: int, token: str, expires) -> bool:
        if won:
            self.lease_token, self.lease_expires_at = token, expires
            # Read under the lease: a takeover may have happened after this object was loaded.
            self.refresh_from_db(fields=["lease_taken_over", "reserved"])
        return bool(won)

    def lease_renew(self, *, token: str, seconds: float) -> bool:
        """Extend a held lease while bytes flow (so `updated_at` also tells when bytes last arrived);
        False when it was lost (expired and taken by another request)."""
        now = timezone.now()
        expires = now + timezone.timedelta(seconds=seconds)
        won = self._mine(token).update(lease_expires_at=expires, updated_at=now)
        if won:
            self.lease_expires_at, self.updated_at = expires, now
        return bool(won)

    def lease_reserve(self, *, token: str, reserved: int) -> bool:
        """Record a larger reservation for the holder of `token` (the caller checked the quota under
        the account's lock); False when the lease was lost."""
        won = self._mine(token).update(reserved=reserved)
        if won:
            self.reserved = reserved
        return bool(won)

    def lease_commit(self, *, token: str, offset: int, hash_state: bytes, store_state: dict,
                     release: bool = True) -> bool:
        """Make the holder's bytes part of the upload: move the offset and keep the lease (`release`
        False: the same request goes on to finish the upload) or free it. False when the lease was
        lost, and then nothing changes."""
        now = timezone.now()
        # The store now holds exactly [0, offset): what a dead earlier holder left past it was cut off
        # when this holder started writing.
        fields = {"offset": offset, "hash_state": hash_state, "store_state": store_state, "updated_at": now,
                  "reserved": offset}
        if release:
            fields.update(lease_token="", lease_expires_at=None)
        won = self._mine(token).update(**fields)
        if won:
            self.offset, self.hash_state, self.store_state, self.updated_at = offset, hash_state, store_state, now
            if release:
                self.lease_token, self.lease_expires_at = "", None
        return bool(won)

    def lease_release(self, *, token: str) -> bool:
        """Give the lease up without committing (the request failed). Its reservation stays, since
        bytes it wrote past the offset may still be in the store until the next holder cuts them."""
        won = self._mine(token).update(lease_token="", lease_expires_at=None)
        if won:
            self.lease_token, self.lease_expires_at = "", None
        return bool(won)

    def reclaim(self, *, idle_before, now) -> bool:
        """Delete this session's row if it is still idle since `idle_before` (or expired at `now`):
        False when a request touched it meanwhile. The caller discards the stored bytes only after
        winning, so a live session never loses its bytes."""
        stale = models.Q(updated_at__lt=idle_before) | models.Q(expires_at__lte=now)
        # Never under a live request's lease (unless the whole session expired): it may be writing.
        won = (Upload.objects.filter(stale, pk=self.pk, offset=self.offset, updated_at=self.updated_at)
               .exclude(lease_expires_at__gt=now, expires_at__gt=now).delete()[0])
        return won > 0


class LoginFailure(models.Model):
    """Failed registry logins in the current window, per source (`key:<key id>` or `addr:<client
    address>`, registry/auth.py); updated atomically."""

    key = models.CharField(max_length=200, unique=True)
    count = models.IntegerField(default=0)
    window_start = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.key}: {self.count}"


class MirrorState(models.TextChoices):
    PENDING = "PENDING"  # waiting for a worker (first run, or a retry after a transient failure)
    COPYING = "COPYING"  # a worker holds the lease and is copying
    DONE = "DONE"  # the target holds the manifest by digest
    FAILED = "FAILED"  # a permanent failure (refused credentials, a target that rejects the image)


class Mirror(models.Model):
    """One image (a manifest digest of a Train repository) in one target registry repository. Shared
    by every job that needs it; progress is saved per blob, so a retry continues where it stopped."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="mirrors")
    manifest_digest = models.CharField(max_length=135)
    target_registry = models.CharField(max_length=255, help_text="host[:port] of the target registry")
    target_repository = models.CharField(max_length=255)
    state = models.CharField(max_length=16, choices=MirrorState.choices, default=MirrorState.PENDING)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    blobs_total = models.IntegerField(default=0)
    blobs_done = models.IntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    lease_holder = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest_digest", "target_registry", "target_repository"],
                                               name="one_mirror_per_digest_and_target")]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.manifest_digest[:19]} → {self.target_registry}/{self.target_repository} ({self.state})"

    @property
    def target_reference(self) -> str:
        """What the cloud pulls: the target repository by digest."""
        return f"{self.target_registry}/{self.target_repository}@{self.manifest_digest}"

    @classmethod
    def lease_take(cls, pk: int, holder: str, *, seconds: float) -> "Mirror | None":
        """Claim the mirror for `holder` if it is due (PENDING and due, or COPYING under a dead
        holder's expired lease). Returns the claimed row, or None when another worker got it first
        or there is nothing to do. The claim counts an attempt before any byte is sent."""
        now = timezone.now()
        due = models.Q(state=MirrorState.PENDING, next_attempt_at__lte=now) | models.Q(
            state=MirrorState.COPYING, lease_until__lt=now)
        won = cls.objects.filter(due, pk=pk).update(
            state=MirrorState.COPYING, lease_holder=holder, lease_until=now + timezone.timedelta(seconds=seconds),
            attempts=models.F("attempts") + 1, started_at=Coalesce("started_at", now), updated_at=now)
        return cls.objects.select_related("repository").get(pk=pk) if won else None

    def lease_renew(self, holder: str, *, seconds: float) -> bool:
        """Extend `holder`'s lease; False if the lease passed to another worker."""
        now = timezone.now()
        return bool(type(self).objects.filter(pk=self.pk, lease_holder=holder, state=MirrorState.COPYING).update(
            lease_until=now + timezone.timedelta(seconds=seconds), updated_at=now))


class MirrorBlob(models.Model):
    """Progress of one blob of a mirror: done, or the upload session a resume continues."""

    mirror = models.ForeignKey(Mirror, on_delete=models.CASCADE, related_name="blobs")
    digest = models.CharField(max_length=135)
    size = models.BigIntegerField()
    bytes_sent = models.BigIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)
    upload_location = models.TextField(blank=True)
    upload_offset = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mirror", "digest"], name="one_progress_row_per_mirror_blob")]

    def __str__(self):
        return f"{self.digest[:19]} of mirror {self.mirror_id}"


class TargetBlob(models.Model):
    """Where a blob is known to be in a target registry, so another repository there can mount it
    instead of receiving the bytes again."""

    target_registry = models.CharField(max_length=255)
    target_repository = models.CharField(max_length=255)
    digest = models.CharField(max_length=135)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["target_registry", "target_repository", "digest"],
                                               name="one_target_blob_record")]
        indexes = [models.Index(fields=["target_registry", "digest"])]

    def __str__(self):
        return f"{self.digest[:19]} in {self.target_registry}/{self.target_repository}"
