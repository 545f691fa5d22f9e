"""REST API of the reading app (under /api/v1/)."""

from contextlib import contextmanager
from dataclasses import asdict

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generator.models import BankImage
from readerstudy.core.roles import AdminWritesResearcherReads, IsAdmin, user_role

from .dry_run import (
    dry_run_call,
    dry_run_current,
    dry_run_display_check_needed,
    dry_run_display_checked,
    dry_run_trials,
)
from .models import DisplayCheck, Reader, ReadingSession, Study, Trial
from .readers import invitation_send, invitation_url, reader_add, reader_progress
from .sessions import SessionError, reader_session, study_close, study_open, study_pool_counts
from .studies import researchers_assignable, studies_visible
from .trials import (
    CallInvalid,
    CallRefused,
    TrialNotFound,
    call_record,
    trial_current,
    trial_place,
    trial_remaining_s,
)
from .viewing import ViewingConditions, display_check_needed, viewing_record


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=["admins", "researchers", "readers", "none"])


class MeView(APIView):
    """The signed-in user and the role they act in."""

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(
            MeSerializer({"username": request.user.get_username(), "role": user_role(request.user).value}).data
        )


class SessionStateSerializer(serializers.Serializer):
    study = serializers.IntegerField()
    phase = serializers.ChoiceField(choices=["training", "main", "finished"])
    index = serializers.IntegerField(help_text="1-based position within the phase.")
    total = serializers.IntegerField(help_text="Images in the phase.")
    time_limit_s = serializers.FloatField(allow_null=True)
    remaining_s = serializers.FloatField(
        allow_null=True, help_text="Seconds left on the current trial's clock (all of them before its image is served)."
    )
    token = serializers.CharField(allow_null=True)
    image_url = serializers.CharField(allow_null=True)
    display_check_needed = serializers.BooleanField(
        help_text="The display check is still to be answered (POST …/viewing) before the first image."
    )


class CallSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=64)
    call = serializers.CharField(max_length=16)
    confidence = serializers.IntegerField(required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    scale_factor = serializers.IntegerField(
        required=False, allow_null=True, help_text="k: each image pixel was shown as k × k screen pixels."
    )
    full_screen = serializers.BooleanField(required=False, allow_null=True, default=None)


class ViewingSerializer(serializers.Serializer):
    """The screen and window in CSS pixels, as the browser reports them; the browser itself is
    taken from the request's User-Agent."""

    screen_width_px = serializers.IntegerField()
    screen_height_px = serializers.IntegerField()
    window_width_px = serializers.IntegerField()
    window_height_px = serializers.IntegerField()
    device_pixel_ratio = serializers.FloatField()
    display_check = serializers.ChoiceField(choices=DisplayCheck.choices)


class ViewingResultSerializer(ViewingSerializer):
    browser = serializers.CharField()
    recorded = serializers.BooleanField(help_text="False: the session's conditions were already recorded; kept.")


def _viewing_conditions(request: Request) -> ViewingConditions:
    body = ViewingSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return ViewingConditions(**body.validated_data, browser=request.headers.get("User-Agent", ""))


class CallResultSerializer(serializers.Serializer):
    recorded = serializers.BooleanField()
    replayed = serializers.BooleanField()
    truth = serializers.CharField(
        allow_null=True, help_text="Only in the training phase of a study that shows answers."
    )
    next = SessionStateSerializer(
        help_text="The session's state after this call, so the page need not ask for it again."
    )


NO_STORE = {"Cache-Control": "no-store"}
READER_THROTTLES: list = []  # a reader's session is never throttled (REST_FRAMEWORK's throttles)
STUDY_PARAMETER = OpenApiParameter("study", int, required=True)


def _study_id(request: Request) -> int:
    try:
        return int(request.query_params.get("study", ""))
    except ValueError:
        raise ValidationError({"study": "Give the study's id: ?study=ID."}) from None


def _session_or_error(request: Request):
    try:
        return reader_session(user=request.user, study_id=_study_id(request))
    except SessionError as error:
        raise PermissionDenied(str(error)) from error


def _state(*, study: Study, current, place: tuple[int, int], image_url: str, check_needed: bool) -> dict:
    """The reader-facing state: where they are and the current trial's token; nothing that
    tells real from synthetic."""
    base = {"study": study.pk, "time_limit_s": study.time_limit_s, "display_check_needed": check_needed}
    if current is None:
        return base | {
            "phase": "finished",
            "index": 0,
            "total": 0,
            "remaining_s": None,
            "token": None,
            "image_url": None,
        }
    index, total = place
    return base | {
        "phase": current.phase,
        "index": index,
        "total": total,
        "remaining_s": trial_remaining_s(current, study.time_limit_s, timezone.now()),
        "token": current.token,
        "image_url": image_url,
    }


def _reader_state(session: ReadingSession) -> dict:
    current = trial_current(session=session)
    check_needed = display_check_needed(session=session)
    if current is None:
        return _state(study=session.reader.study, current=None, place=(0, 0), image_url="", check_needed=check_needed)
    place = trial_place(trial=current, training_total=len(session.training_order), main_total=len(session.main_order))
    image_url = reverse("reading-image", args=[current.token])
    return _state(
        study=session.reader.study, current=current, place=place, image_url=image_url, check_needed=check_needed
    )


def _dry_run_state(request: Request, study: Study) -> dict:
    current = dry_run_current(store=request.session, study=study)
    check_needed = dry_run_display_check_needed(store=request.session, study=study)
    if current is None:
        return _state(study=study, current=None, place=(0, 0), image_url="", check_needed=check_needed)
    trials = dry_run_trials(store=request.session, study=study)
    training_total = sum(trial.phase == Trial.Phase.TRAINING for trial in trials)
    place = trial_place(trial=current, training_total=training_total, main_total=len(trials) - training_total)
    image_url = reverse("dry-run-image", args=[study.pk, current.token])
    return _state(study=study, current=current, place=place, image_url=image_url, check_needed=check_needed)


class CallConflict(APIException):
    status_code = 409
    default_detail = "This call cannot be recorded now."


@contextmanager
def _call_errors_as_http():
    """The trial rules' refusals as HTTP answers, the same for readers and dry runs: no such
    current trial 404 (no hint why), malformed 400, refused now 409 with the reason."""
    try:
        yield
    except TrialNotFound:
        raise NotFound() from None
    except CallInvalid as error:
        raise ValidationError({"call": str(error)}) from error
    except CallRefused as error:
        raise CallConflict(str(error)) from error


def _truth(trial) -> str:
    """The class of a trial's image: fetched with a reader's trial; looked up for a dry run's."""
    if isinstance(trial, Trial):
        return trial.bank_image.image_class
    return BankImage.objects.only("image_class").get(pk=trial.bank_image_id).image_class


def _call_result(*, study: Study, trial, replayed: bool, next_state: dict) -> dict:
    show_truth = trial.phase == Trial.Phase.TRAINING and study.training_feedback
    result = {"recorded": True, "replayed": replayed, "truth": _truth(trial) if show_truth else None}
    return CallResultSerializer(result | {"next": next_state}).data


class MySessionView(APIView):
    """The reader's position in a study: phase, index, total, time limit, the current trial's
    token and image URL. Nothing in it tells real from synthetic."""

    throttle_classes = READER_THROTTLES

    @extend_schema(parameters=[STUDY_PARAMETER], responses=SessionStateSerializer)
    def get(self, request: Request) -> Response:
        state = _reader_state(_session_or_error(request))
        return Response(SessionStateSerializer(state).data, headers=NO_STORE)


class MyCallsView(APIView):
    """Record a call on the current trial. Replays return the stored call; late calls are refused
    and the trial recorded expired."""

    throttle_classes = READER_THROTTLES

    @extend_schema(
        parameters=[STUDY_PARAMETER],
        request=CallSerializer,
        responses={200: CallResultSerializer, 201: CallResultSerializer},
    )
    def post(self, request: Request) -> Response:
        session = _session_or_error(request)
        body = CallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with _call_errors_as_http():
            outcome = call_record(session=session, **body.validated_data)
        result = _call_result(
            study=session.reader.study,
            trial=outcome.trial,
            replayed=outcome.replayed,
            next_state=_reader_state(session),
        )
        return Response(result, status=200 if outcome.replayed else 201)


class MyViewingView(APIView):
    """The display check's answer and the screen the session is read on, recorded once per
    session (before the first image); a second report changes nothing (200)."""

    throttle_classes = READER_THROTTLES

    @extend_schema(
        parameters=[STUDY_PARAMETER],
        request=ViewingSerializer,
        responses={200: ViewingResultSerializer, 201: ViewingResultSerializer},
    )
    def post(self, request: Request) -> Response:
        session = _session_or_error(request)
        session, recorded = viewing_record(session=session, conditions=_viewing_conditions(request))
        fields = [*ViewingSerializer().fields, "browser"]
        result = {name: getattr(session, name) for name in fields} | {"recorded": recorded}
        return Response(ViewingResultSerializer(result).data, status=201 if recorded else 200)


def _dry_run_study(study_id: int) -> Study:
    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        raise NotFound()
    return study


class DryRunSessionView(APIView):
    """An admin's dry run of a study: the same state as a reader's, recorded nowhere."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=SessionStateSerializer)
    def get(self, request: Request, study_id: int) -> Response:
        state = _dry_run_state(request, _dry_run_study(study_id))
        return Response(SessionStateSerializer(state).data, headers=NO_STORE)


class DryRunCallsView(APIView):
    """A call in an admin's dry run: decided by the readers' rules, recorded nowhere."""

    permission_classes = [IsAdmin]

    @extend_schema(request=CallSerializer, responses={200: CallResultSerializer, 201: CallResultSerializer})
    def post(self, request: Request, study_id: int) -> Response:
        study = _dry_run_study(study_id)
        body = CallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = body.validated_data
        with _call_errors_as_http():
            trial, replayed = dry_run_call(
                store=request.session,
                study=study,
                token=fields["token"],
                call=fields["call"],
                confidence=fields.get("confidence"),
                reason=fields.get("reason", ""),
                scale_factor=fields.get("scale_factor"),
            )
        result = _call_result(study=study, trial=trial, replayed=replayed, next_state=_dry_run_state(request, study))
        return Response(result, status=200 if replayed else 201)


class DryRunViewingView(APIView):
    """The display check in an admin's dry run: checked as a reader's, recorded nowhere."""

    permission_classes = [IsAdmin]

    @extend_schema(request=ViewingSerializer, responses={200: ViewingResultSerializer})
    def post(self, request: Request, study_id: int) -> Response:
        study = _dry_run_study(study_id)
        conditions = _viewing_conditions(request)
        dry_run_display_checked(store=request.session, study=study, conditions=conditions)
        return Response(ViewingResultSerializer(vars(conditions) | {"recorded": False}).data)


class ReaderSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Reader
        fields = [
            "id",
            "study",
            "username",
            "role",
            "years_experience",
            "simulated",
            "invited_at",
            "consent_accepted_at",
            "progress",
        ]
        read_only_fields = ["invited_at", "consent_accepted_at"]

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                k: {"type": t}
                for k, t in [("status", "string"), ("done", "integer"), ("expired", "integer"), ("total", "integer")]
            },
        }
    )
    def get_progress(self, reader: Reader) -> dict:
        return asdict(reader_progress(reader=reader))


class ReaderCreateSerializer(serializers.Serializer):
    study = serializers.PrimaryKeyRelatedField(queryset=Study.objects.all())
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=Reader.Role.choices, default=Reader.Role.OTHER)
    years_experience = serializers.IntegerField(min_value=0, default=0)
    send_invitation = serializers.BooleanField(default=False, help_text="E-mail the invitation link now.")


class InvitationSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Lets the reader set a password and lands them on the study.")
    emailed = serializers.BooleanField()


class StudySerializer(serializers.ModelSerializer):
    readers = serializers.IntegerField(source="readers.count", read_only=True)
    pools = serializers.SerializerMethodField()
    researchers = serializers.SlugRelatedField(
        many=True,
        slug_field="username",
        queryset=researchers_assignable(),
        required=False,
        help_text="Usernames of the researchers who see this study's results (admins see every study).",
    )

    class Meta:
        model = Study
        fields = [
            "id",
            "name",
            "state",
            "instructions",
            "consent_text",
            *Study.PROTOCOL_FIELDS,
            "show_score_after",
            "created_at",
            "readers",
            "pools",
            "researchers",
        ]
        read_only_fields = ["state", "created_at"]

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "integer"}})
    def get_pools(self, study: Study) -> dict:
        return study_pool_counts(study=study)


class StudyViewSet(viewsets.ModelViewSet):
    """Studies: admins create and change them (evidence settings freeze once reading started);
    researchers read them."""

    serializer_class = StudySerializer
    permission_classes = [AdminWritesResearcherReads]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return studies_visible(user=self.request.user).order_by("pk")

    @extend_schema(request=None, responses=StudySerializer)
    @action(detail=True, methods=["post"])
    def open(self, request: Request, pk: str) -> Response:
        """Open the study for reading (fixed-set mode draws its sets now)."""
        return Response(StudySerializer(study_open(study=self.get_object())).data)

    @extend_schema(request=None, responses=StudySerializer)
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str) -> Response:
        return Response(StudySerializer(study_close(study=self.get_object())).data)


class ReaderViewSet(viewsets.ModelViewSet):
    """Readers with their progress (filter with ?study=ID); admins add readers and get their
    invitation links."""

    serializer_class = ReaderSerializer
    permission_classes = [AdminWritesResearcherReads]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        readers = (
            Reader.objects.select_related("user", "study")
            .filter(study__in=studies_visible(user=self.request.user))
            .order_by("pk")
        )
        if "study" in self.request.query_params:
            readers = readers.filter(study_id=_study_id(self.request))
        return readers

    @extend_schema(request=ReaderCreateSerializer, responses={201: ReaderSerializer})
    def create(self, request: Request) -> Response:
        body = ReaderCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        send = fields.pop("send_invitation")
        reader = reader_add(**fields)
        if send:
            invitation_send(reader=reader, base_url=request.build_absolute_uri("/"))
        return Response(ReaderSerializer(reader).data, status=201)

    @extend_schema(request=None, responses=InvitationSerializer)
    @action(detail=True, methods=["post"])
    def invitation(self, request: Request, pk: str) -> Response:
        """A fresh invitation link (e-mailed when the reader has an address and ?send=1)."""
        reader = self.get_object()
        base_url = request.build_absolute_uri("/")
        emailed = request.query_params.get("send") == "1"
        url = (
            invitation_send(reader=reader, base_url=base_url)
            if emailed
            else invitation_url(reader=reader, base_url=base_url)
        )
        return Response(InvitationSerializer({"url": url, "emailed": emailed}).data)
