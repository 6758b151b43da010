"""/v2 routes. Names contain '/', so each route takes the shortest prefix before a fixed suffix and
the views validate the name against the OCI grammar before anything else."""

from django.urls import re_path

from registry import views_base, views_blobs, views_manifests, views_uploads

NAME = r"(?P<name>[^?#]+?)"

urlpatterns = [
    re_path(r"^$", views_base.version_check),
    re_path(r"^token$", views_base.token),
    re_path(r"^_catalog$", views_base.catalog),
    re_path(rf"^{NAME}/tags/list$", views_manifests.tags_list),
    re_path(rf"^{NAME}/manifests/(?P<reference>[^/]+)$", views_manifests.manifest),
    re_path(rf"^{NAME}/referrers/(?P<digest>[^/]+)$", views_manifests.referrers),
    re_path(rf"^{NAME}/blobs/uploads/?$", views_uploads.upload_begin),
    re_path(rf"^{NAME}/blobs/uploads/(?P<upload_id>[^/]+)$", views_uploads.upload_session),
    re_path(rf"^{NAME}/blobs/(?P<digest>[^/]+)$", views_blobs.blob),
    re_path(r"^(?P<rest>.*)$", views_base.unknown),
]
