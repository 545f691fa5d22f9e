"""REST API of the results app (under /api/v1/): a study's results table, calls, iMRMC file and
audit bundle, at ``studies/{id}/results/...``. CSV comes from a renderer on the same endpoints
as JSON."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from readerstudy.core.roles import AdminWritesResearcherReads
from readerstudy.reading.studies import studies_visible

from .exports import CSVRenderer, PlainTextRenderer, ZipRenderer, safe_filename, study_bundle
from .scoring import CALLS_COLUMNS, TABLE_COLUMNS, calls_rows, imrmc_text, study_table_rows


class StudyResultsViewSet(viewsets.GenericViewSet):
    """A study's results, for researchers and admins; registered beside the reading app's
    studies, so the paths are ``studies/{id}/results/...``."""

    permission_classes = [AdminWritesResearcherReads]

    def get_queryset(self):
        return studies_visible(user=self.request.user).order_by("pk")  # another's study: 404

    def _download(self, request: Request, data, *, filename: str) -> Response:
        response = Response(data)
        if request.accepted_renderer.format != "json":
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, url_path="results/table", url_name="table", renderer_classes=[JSONRenderer, CSVRenderer])
    def results_table(self, request: Request, pk: str) -> Response:
        """The results table: a row per reader (TP, FN, FP, TN, rates, accuracy, balanced accuracy,
        intervals, p-values) and per group. ``?format=csv`` for table.csv."""
        study = self.get_object()
        self.csv_columns = TABLE_COLUMNS
        rows = study_table_rows(study=study)
        return self._download(request, rows, filename=f"{safe_filename(study.name)}-table.csv")

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, url_path="results/calls", url_name="calls", renderer_classes=[JSONRenderer, CSVRenderer])
    def results_calls(self, request: Request, pk: str) -> Response:
        """Every trial: reader, role, case, truth, call, confidence, reason, phase, times,
        response ms, expired. ``?format=csv`` for calls.csv."""
        study = self.get_object()
        self.csv_columns = CALLS_COLUMNS
        return self._download(request, calls_rows(study=study), filename=f"{safe_filename(study.name)}-calls.csv")

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    @action(detail=True, url_path="results/imrmc", url_name="imrmc", renderer_classes=[PlainTextRenderer])
    def results_imrmc(self, request: Request, pk: str) -> Response:
        """The main-phase calls in iMRMC's input format."""
        study = self.get_object()
        return self._download(request, imrmc_text(study=study), filename=f"{safe_filename(study.name)}.imrmc")

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, url_path="results/bundle", url_name="bundle", renderer_classes=[ZipRenderer])
    def results_bundle(self, request: Request, pk: str) -> Response:
        """A zip to audit or re-run the analysis: settings, seeds and orders, the bank manifest,
        generator hashes and configuration, code version, audit log, and the three exports."""
        study = self.get_object()
        return self._download(request, study_bundle(study=study), filename=f"{safe_filename(study.name)}-bundle.zip")
