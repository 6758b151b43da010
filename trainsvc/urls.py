from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from trainsvc.health import api_not_found, healthz, readyz

admin.site.site_header = "Train operations"
admin.site.site_title = "Train"

urlpatterns = [
    path("healthz", healthz),
    path("readyz", readyz),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(authentication_classes=[], permission_classes=[]),
         name="openapi"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="openapi", authentication_classes=[],
                                                   permission_classes=[]), name="api-docs"),
    path("v1/", include("registry.api_urls")),
    path("v1/", include("jobs.urls")),
    # Unknown API paths answer in JSON, like every other API error.
    re_path(r"^v1/", api_not_found, name="api-not-found"),
    path("v2/", include("registry.urls")),
    path("admin/", admin.site.urls),
]
