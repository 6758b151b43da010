from rest_framework.routers import SimpleRouter

from backends.views import BackendViewSet
from jobs.views import JobViewSet

router = SimpleRouter(trailing_slash=False)
router.register("jobs", JobViewSet, basename="job")
router.register("backends", BackendViewSet, basename="backend")
urlpatterns = router.urls
