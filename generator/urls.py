"""URLs of the generator app: API routes (under /api/v1/) and admin-only file views."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api, views

router = SimpleRouter()
router.register("datasets", api.DatasetViewSet, basename="dataset")
router.register("volumes", api.VolumeViewSet, basename="volume")
router.register("upload-jobs", api.UploadJobViewSet, basename="upload-job")
router.register("subjects", api.SubjectViewSet, basename="subject")
router.register("training-jobs", api.TrainingJobViewSet, basename="training-job")
router.register("bank-fills", api.BankFillJobViewSet, basename="bank-fill")
api_urlpatterns = router.urls

urlpatterns = [
    path("volumes/<int:volume_id>/preview.png", views.volume_preview, name="volume-preview"),
    path("training/", views.training_list, name="training-list"),
    path("training/new/", views.training_new, name="training-new"),
    path("training/<int:job_id>/", views.training_detail, name="training-detail"),
    path("training/<int:job_id>/cancel/", views.training_cancel, name="training-cancel"),
    path("training/<int:job_id>/samples.png", views.training_samples, name="training-samples"),
    path("training/<int:job_id>/loss.png", views.training_loss, name="training-loss"),
    path("training/<int:job_id>/generator.keras", views.training_generator, name="training-generator"),
    path("training/<int:job_id>/fill/", views.training_fill, name="training-fill"),
    path("bank/", views.bank_browser, name="bank"),
    path("bank/<int:image_id>.png", views.bank_image_file, name="bank-image"),
]
