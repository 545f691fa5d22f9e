"""Create the media bucket when it is missing (bin/migrate runs this; nothing to do on local disk)."""

from django.core.management.base import BaseCommand

from readerstudy.core.storage import storage_bucket_ensure


class Command(BaseCommand):
    help = "Create the S3/MinIO bucket of STORAGE_BACKEND when it does not exist; with media on local disk, nothing."

    def handle(self, *args, **options) -> None:
        self.stdout.write(storage_bucket_ensure())
