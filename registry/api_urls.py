from django.urls import path, re_path

from registry.api import ImageList, TagHistory

urlpatterns = [
    path("images", ImageList.as_view(), name="image-list"),
    re_path(r"^images/(?P<repo>[a-z0-9._/-]+)/tags/(?P<tag>[A-Za-z0-9_.-]+)/history$", TagHistory.as_view(),
            name="image-tag-history"),
]
