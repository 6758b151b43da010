"""The service's URLs plus `/bench/bare`: a DRF view with no authentication and one trivial query,
the floor any authenticated endpoint is measured against."""

from django.db import connection
from django.urls import path
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.response import Response

from trainsvc.urls import urlpatterns as service_urlpatterns


@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def bare(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Response({"ok": True})


urlpatterns = [path("bench/bare", bare), *service_urlpatterns]
