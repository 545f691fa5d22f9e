"""Pages of the generator app that are not the admin's: files served to admins only."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404

from .models import Volume


@staff_member_required
def volume_preview(request: HttpRequest, volume_id: int) -> FileResponse:
    volume = get_object_or_404(Volume, pk=volume_id)
    if not volume.preview:
        raise Http404("This volume has no preview yet.")
    response = FileResponse(volume.preview.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response
