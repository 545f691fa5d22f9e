"""REST API of the generator app: datasets and their volumes (admins only)."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from readerstudy.core.jobs import job_cancel
from readerstudy.core.roles import IsAdmin

from .bank_fill import bank_fill_create
from .models import BankFillJob, Dataset, Subject, TrainingJob, UploadJob, Volume
from .serializers import (
    BankFillJobSerializer,
    DatasetSerializer,
    SubjectMergeRecordSerializer,
    SubjectMergeSerializer,
    SubjectSerializer,
    TrainingJobCreateSerializer,
    TrainingJobSerializer,
    UploadJobSerializer,
    VolumeSerializer,
    VolumeUploadSerializer,
)
from .subjects import subject_merge
from .training_jobs import training_job_create
from .uploads import upload_job_create


class DatasetViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Dataset.objects.order_by("name")
    serializer_class = DatasetSerializer
    permission_classes = [IsAdmin]

    @extend_schema(request=VolumeUploadSerializer, responses={202: UploadJobSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser], url_path="volumes")
    def upload_volumes(self, request: Request, pk: str | None = None) -> Response:
        """Upload NIfTI files or zips of DICOM series: stored at once and answered with an upload
        job (202); a worker ingests them, and the job (``GET upload-jobs/{id}/``) gives each
        file's verdict. A bad file never costs the others."""
        upload = VolumeUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        job = upload_job_create(
            dataset=self.get_object(),
            uploads=upload.validated_data["files"],
            align=upload.validated_data["align"],
            subject_label=upload.validated_data["subject"],
            user=request.user,
        )
        return Response(UploadJobSerializer(job).data, status=202)


class UploadJobViewSet(viewsets.ReadOnlyModelViewSet):
    """Uploads being ingested on the workers, newest first, with a verdict per file."""

    queryset = UploadJob.objects.select_related("dataset").order_by("-pk")
    serializer_class = UploadJobSerializer
    permission_classes = [IsAdmin]


class VolumeViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Volume.objects.select_related("dataset", "subject").order_by("dataset__name", "subject__label", "pk")
    serializer_class = VolumeSerializer
    permission_classes = [IsAdmin]

    def get_queryset(self):
        queryset = super().get_queryset()
        dataset = self.request.query_params.get("dataset")
        return queryset.filter(dataset__name=dataset) if dataset else queryset


class SubjectViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Subjects (pseudonymous people) and their volumes; rename by PATCHing ``label`` or ``note``,
    merge two found to be one person with ``merge``."""

    queryset = Subject.objects.prefetch_related("volumes").order_by("label")
    serializer_class = SubjectSerializer
    permission_classes = [IsAdmin]
    lookup_field = "label"
    lookup_value_regex = "[^/]+"
    http_method_names = ["get", "patch", "post", "head", "options"]

    @extend_schema(request=SubjectMergeSerializer, responses={201: SubjectMergeRecordSerializer})
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, label: str | None = None) -> Response:
        """Fold another subject into this one (its volumes, real images and patient links); audited."""
        form = SubjectMergeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        record = subject_merge(
            keep=self.get_object(),
            merge=form.validated_data["merge"],
            user=request.user,
            reason=form.validated_data["reason"],
        )
        return Response(SubjectMergeRecordSerializer(record).data, status=201)


class TrainingJobViewSet(viewsets.ReadOnlyModelViewSet):
    """DCGAN training jobs: the job page polls ``retrieve`` for its progress bar."""

    queryset = TrainingJob.objects.select_related("dataset").order_by("-created_at")
    serializer_class = TrainingJobSerializer
    permission_classes = [IsAdmin]

    @extend_schema(request=TrainingJobCreateSerializer, responses={201: TrainingJobSerializer})
    def create(self, request: Request) -> Response:
        form = TrainingJobCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = dict(form.validated_data)
        job = training_job_create(user=request.user, **values)
        return Response(TrainingJobSerializer(job).data, status=201)

    @extend_schema(request=None, responses=TrainingJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        job_cancel(job=job)
        return Response(TrainingJobSerializer(job).data)


class BankFillJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Bank fills: queue one from a finished training job; follow its progress and report."""

    queryset = BankFillJob.objects.order_by("-created_at")
    serializer_class = BankFillJobSerializer
    permission_classes = [IsAdmin]

    def perform_create(self, serializer: BankFillJobSerializer) -> None:
        serializer.instance = bank_fill_create(user=self.request.user, **serializer.validated_data)
