"""REST API of the reading app (under /api/v1/)."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Trial
from .roles import user_role
from .sessions import SessionError, reader_session
from .trials import CallInvalid, CallRefused, TrialNotFound, call_record, trial_current


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
    token = serializers.CharField(allow_null=True)
    image_url = serializers.CharField(allow_null=True)


class CallSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=64)
    call = serializers.CharField(max_length=16)
    confidence = serializers.IntegerField(required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class CallResultSerializer(serializers.Serializer):
    recorded = serializers.BooleanField()
    replayed = serializers.BooleanField()
    truth = serializers.CharField(
        allow_null=True, help_text="Only in the training phase of a study that shows answers."
    )


def _session_or_error(request: Request):
    try:
        study_id = int(request.query_params.get("study", ""))
    except ValueError:
        raise ValidationError({"study": "Give the study's id: ?study=ID."}) from None
    try:
        return reader_session(user=request.user, study_id=study_id)
    except SessionError as error:
        raise PermissionDenied(str(error)) from error


class MySessionView(APIView):
    """The reader's position in a study: phase, index, total, time limit, the current trial's
    token and image URL. Nothing in it tells real from synthetic."""

    @extend_schema(parameters=[OpenApiParameter("study", int, required=True)], responses=SessionStateSerializer)
    def get(self, request: Request) -> Response:
        session = _session_or_error(request)
        current = trial_current(session=session)
        study = session.reader.study
        if current is None:
            state = {"phase": "finished", "index": 0, "total": 0, "token": None, "image_url": None}
        else:
            in_phase = session.trials.filter(phase=current.phase)
            state = {
                "phase": current.phase,
                "index": in_phase.filter(position__lte=current.position).count(),
                "total": in_phase.count(),
                "token": current.token,
                "image_url": reverse("reading-image", args=[current.token]),
            }
        state |= {"study": study.pk, "time_limit_s": study.time_limit_s}
        return Response(SessionStateSerializer(state).data, headers={"Cache-Control": "no-store"})


class MyCallsView(APIView):
    """Record a call on the current trial. Replays return the stored call; late calls are refused
    and the trial recorded expired."""

    @extend_schema(
        parameters=[OpenApiParameter("study", int, required=True)],
        request=CallSerializer,
        responses={200: CallResultSerializer, 201: CallResultSerializer},
    )
    def post(self, request: Request) -> Response:
        session = _session_or_error(request)
        body = CallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outcome = call_record(session=session, **body.validated_data)
        except TrialNotFound:
            raise NotFound() from None
        except CallInvalid as error:
            raise ValidationError({"call": str(error)}) from error
        except CallRefused as error:
            return Response({"detail": str(error)}, status=409)
        trial = outcome.trial
        show_truth = trial.phase == Trial.Phase.TRAINING and session.reader.study.training_feedback
        result = {
            "recorded": True,
            "replayed": outcome.replayed,
            "truth": trial.bank_image.image_class if show_truth else None,
        }
        return Response(CallResultSerializer(result).data, status=200 if outcome.replayed else 201)
