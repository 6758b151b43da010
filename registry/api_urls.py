from django.urls import path, re_path

from registry.api import ImageList, TagHistory, TagList

REPO = r"(?P<repo>[a-z0-9._/-]+)"

urlpatterns = [
    path("images", ImageList.as_view(), name="image-list"),
    re_path(rf"^images/{REPO}/tags$", TagList.as_view(), name="image-tag-list"),
    re_path(rf"^images/{REPO}/tags/(?P<tag>[A-Za-z0-9_.-]+)/history$", TagHistory.as_view(),
            name="image-tag-history"),
]
