"""API serializers of the generator app (admins only: they show source file names)."""

from rest_framework import serializers

from .models import Dataset, Volume


class DatasetSerializer(serializers.ModelSerializer):
    volume_count = serializers.IntegerField(source="volumes.count", read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "fov_mm", "created_at", "volume_count"]


class VolumeSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Volume
        fields = [
            "id",
            "dataset",
            "subject_label",
            "source_name",
            "source_format",
            "checksum",
            "shape",
            "voxel_size_mm",
            "status",
            "error",
            "alignment",
            "correction_lr_deg",
            "correction_ap_deg",
            "correction_cc_deg",
            "correction_level_mm",
            "created_at",
        ]
        read_only_fields = fields


class VolumeUploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    align = serializers.BooleanField(default=True, help_text="Queue alignment of the stored volumes.")


class IngestResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["stored", "duplicate", "error"])
    message = serializers.CharField()
    volume = serializers.IntegerField(source="volume.pk", read_only=True, allow_null=True, default=None)
