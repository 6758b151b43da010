"""GET /v1/images, GET /v1/images/{repo}/tags and GET /v1/images/{repo}/tags/{tag}/history: the
account's registry, read-only.

Listings stay bounded whatever a repository holds: each repository shows its first tags only (with
the count and the URL of the full, paginated list), and no listing ever reads a manifest's content
(up to 4 MiB each), only the columns it shows. Each tag shows its manifest's mirrors (the copies in a
cloud's registry that jobs run from), read in one query for the whole page."""

from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import generics, serializers

from registry.models import Mirror, Repository, Tag, TagEvent
from trainsvc.api.pagination import NewestFirstCursorPagination
from trainsvc.api.strict import StrictQueryParamsMixin

# Tags shown inline per repository in GET /v1/images; the rest are one request away (tags_url).
TAGS_PER_REPOSITORY = 20


def tags_for_listing():
    """Tags with the manifest columns a listing shows, never the manifest's content."""
    return Tag.objects.select_related("manifest").defer("manifest__content").order_by("name", "id")


MIRROR_COLUMNS = ("repository_id", "manifest_digest", "target_registry", "target_repository", "state", "bytes_done",
                  "bytes_total", "error", "updated_at")


class MirrorSerializer(serializers.ModelSerializer):
    registry = serializers.CharField(source="target_registry", help_text="host[:port] of the target registry.")
    repository = serializers.CharField(source="target_repository")

    class Meta:
        model = Mirror
        fields = ["registry", "repository", "state", "bytes_done", "bytes_total", "error", "updated_at"]


def mirrors_of_tags(tags) -> dict[tuple, list[Mirror]]:
    """The mirrors of the tags' manifests, by (repository id, digest): one query for a whole page."""
    found: dict[tuple, list[Mirror]] = {}
    if not tags:
        return found
    repository_ids = {tag.repository_id for tag in tags}
    digests = {tag.manifest.digest for tag in tags}
    rows = (Mirror.objects.filter(repository_id__in=repository_ids, manifest_digest__in=digests)
            .only(*MIRROR_COLUMNS).order_by("target_registry", "target_repository"))
    for mirror in rows:
        found.setdefault((mirror.repository_id, mirror.manifest_digest), []).append(mirror)
    return found


class TagSerializer(serializers.ModelSerializer):
    digest = serializers.CharField(source="manifest.digest")
    media_type = serializers.CharField(source="manifest.media_type")
    size = serializers.IntegerField(source="manifest.total_size", help_text="Config and layers, in bytes.")
    mirrors = serializers.SerializerMethodField(
        help_text="Copies of this manifest in a cloud's registry (state PENDING, COPYING, DONE or FAILED).")

    class Meta:
        model = Tag
        fields = ["name", "digest", "media_type", "size", "updated_at", "mirrors"]

    @extend_schema_field(MirrorSerializer(many=True))
    def get_mirrors(self, tag) -> list:
        mirrors = self.context.get("mirrors", {}).get((tag.repository_id, tag.manifest.digest), [])
        return MirrorSerializer(mirrors, many=True).data


class WithMirrorStates:
    """Serializes a page of tags with their manifests' mirrors, read in one query."""

    def tags_of(self, page) -> list:
        return list(page)

    def get_serializer(self, *args, **kwargs):
        if args and kwargs.get("many"):
            kwargs["context"] = {**self.get_serializer_context(), "mirrors": mirrors_of_tags(self.tags_of(args[0]))}
        return super().get_serializer(*args, **kwargs)


class RepositorySerializer(serializers.ModelSerializer):
    tags = TagSerializer(many=True, source="first_tags",
                         help_text=f"The first {TAGS_PER_REPOSITORY} tags by name; all of them at tags_url.")
    tag_count = serializers.IntegerField(help_text="How many tags the repository has.")
    tags_url = serializers.SerializerMethodField(help_text="GET /v1/images/{repo}/tags: every tag, paginated.")

    class Meta:
        model = Repository
        fields = ["name", "created_at", "last_push_at", "tag_count", "tags", "tags_url"]

    def get_tags_url(self, repository) -> str:
        path = reverse("image-tag-list", kwargs={"repo": repository.name})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class TagEventSerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = TagEvent
        fields = ["tag", "old_digest", "new_digest", "actor", "at"]


class ImageList(WithMirrorStates, StrictQueryParamsMixin, generics.ListAPIView):
    """Repositories of the account that hold an image, newest first, each with its tag count and its
    first tags (by name) and the digests they point at."""

    serializer_class = RepositorySerializer

    def tags_of(self, page) -> list:
        return [tag for repository in page for tag in repository.first_tags]

    def get_queryset(self):
        tag_count = Tag.objects.filter(repository=OuterRef("pk")).order_by().values("repository")
        first_tags = Prefetch("tags", queryset=tags_for_listing()[:TAGS_PER_REPOSITORY], to_attr="first_tags")
        return (Repository.objects.listed().filter(account=self.request.auth.account)
                .annotate(tag_count=Coalesce(Subquery(tag_count.annotate(n=Count("id")).values("n")), 0))
                .prefetch_related(first_tags))


def _account_repository(request, name, *, listed: bool) -> Repository:
    repositories = Repository.objects.listed() if listed else Repository.objects.all()
    repository = repositories.filter(account=request.auth.account, name=name).first()
    if repository is None:
        raise Http404("No such repository in this account.")
    return repository


class TagsByName(NewestFirstCursorPagination):
    ordering = ("name", "id")


class TagList(WithMirrorStates, StrictQueryParamsMixin, generics.ListAPIView):
    """Every tag of one repository, by name, paginated with a cursor."""

    serializer_class = TagSerializer
    pagination_class = TagsByName

    def get_queryset(self):
        return tags_for_listing().filter(
            repository=_account_repository(self.request, self.kwargs["repo"], listed=True))


class TagHistory(StrictQueryParamsMixin, generics.ListAPIView):
    """Every move of one tag, newest first: old digest, new digest, who, when. A deleted tag keeps
    its history; a tag that never existed is 404."""

    serializer_class = TagEventSerializer

    def get_queryset(self):
        # Not only listed repositories: history outlives the last manifest of a repository.
        repository = _account_repository(self.request, self.kwargs["repo"], listed=False)
        events = TagEvent.objects.filter(repository=repository, tag=self.kwargs["tag"])
        if not events.exists():
            raise Http404("No such tag in this repository, now or before.")
        return events
