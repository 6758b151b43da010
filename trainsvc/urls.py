from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from trainsvc.health import healthz, readyz

admin.site.site_header = "Train operations"
admin.site.site_title = "Train"

urlpatterns = [
    path("healthz", healthz),
    path("readyz", readyz),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(authentication_classes=[], permission_classes=[]),
         name="openapi"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="openapi", authentication_classes=[],
                                                   permission_classes=[]), name="api-docs"),
    path("v1/", include("jobs.urls")),
    path("admin/", admin.site.urls),
]
