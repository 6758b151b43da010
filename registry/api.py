"""GET /v1/images and GET /v1/images/{repo}/tags/{tag}/history: the account's registry, read-only."""

from django.db.models import Prefetch
from django.http import Http404
from rest_framework import generics, serializers

from registry.models import Repository, Tag, TagEvent


class TagSerializer(serializers.ModelSerializer):
    digest = serializers.CharField(source="manifest.digest")
    media_type = serializers.CharField(source="manifest.media_type")
    size = serializers.IntegerField(source="manifest.total_size", help_text="Config and layers, in bytes.")

    class Meta:
        model = Tag
        fields = ["name", "digest", "media_type", "size", "updated_at"]


class RepositorySerializer(serializers.ModelSerializer):
    tags = TagSerializer(many=True)

    class Meta:
        model = Repository
        fields = ["name", "created_at", "last_push_at", "tags"]


class TagEventSerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = TagEvent
        fields = ["tag", "old_digest", "new_digest", "actor", "at"]


class ImageList(generics.ListAPIView):
    """Repositories of the account, newest first, each with its tags and the digests they point at."""

    serializer_class = RepositorySerializer

    def get_queryset(self):
        tags = Tag.objects.select_related("manifest").order_by("name")
        return Repository.objects.filter(account=self.request.auth.account).prefetch_related(
            Prefetch("tags", queryset=tags))


class TagHistory(generics.ListAPIView):
    """Every move of one tag, newest first: old digest, new digest, who, when."""

    serializer_class = TagEventSerializer

    def get_queryset(self):
        repository = Repository.objects.filter(account=self.request.auth.account, name=self.kwargs["repo"]).first()
        if repository is None:
            raise Http404("No such repository in this account.")
        return TagEvent.objects.filter(repository=repository, tag=self.kwargs["tag"])
