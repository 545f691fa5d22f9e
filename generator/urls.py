"""URLs of the generator app: API routes (under /api/v1/) and admin-only file views."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api, views

router = SimpleRouter()
router.register("datasets", api.DatasetViewSet, basename="dataset")
router.register("volumes", api.VolumeViewSet, basename="volume")
api_urlpatterns = router.urls

urlpatterns = [
    path("volumes/<int:volume_id>/preview.png", views.volume_preview, name="volume-preview"),
]
