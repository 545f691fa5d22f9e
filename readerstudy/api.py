"""REST API of the reading app (under /api/v1/)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .roles import user_role


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
