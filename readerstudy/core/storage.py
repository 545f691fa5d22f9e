"""Media through Django's storage API, the same on local disk and on S3/MinIO.

S3 has no folders: ``exists("runs/7")`` of a prefix asks for an object of that name and answers
False though thousands of files lie below it. So a folder's files are found by listing the prefix,
which both backends answer (the file system raises for a missing folder, S3 lists nothing).
"""

import contextlib
from pathlib import Path

from django.core.files.storage import Storage, default_storage


def storage_files(prefix: str, storage: Storage | None = None) -> list[str]:
    """Every file name below ``prefix`` (no trailing slash), in any depth; [] if there is none."""
    storage = storage or default_storage
    try:
        folders, files = storage.listdir(prefix)
    except FileNotFoundError:  # the file system's answer for a folder never written
        return []
    names = [f"{prefix}/{name}" for name in files]
    for folder in folders:
        names += storage_files(f"{prefix}/{folder}", storage)
    return names


def storage_delete_prefix(prefix: str, storage: Storage | None = None) -> int:
    """Delete every file below ``prefix``; returns how many."""
    storage = storage or default_storage
    names = storage_files(prefix, storage)
    for name in names:
        storage.delete(name)
    _remove_empty_folders(prefix, storage)
    return len(names)


def _remove_empty_folders(prefix: str, storage: Storage) -> None:
    """On local disk, the folders the deleted files leave (S3 has none to leave)."""
    try:
        root = Path(storage.path(prefix))
    except NotImplementedError:  # no local path: an object store
        return
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: something else lives there
            folder.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def storage_bucket_ensure(storage: Storage | None = None) -> str:
    """Create the bucket media goes to when it does not exist yet, so a fresh MinIO needs no
    console (docker-compose's migrate step runs this); says what it found."""
    storage = storage or default_storage
    bucket_name = getattr(storage, "bucket_name", None)
    if bucket_name is None:
        return "Media are on local disk: no bucket to create."
    from botocore.exceptions import ClientError  # only S3 set-ups have it loaded

    client = storage.connection.meta.client
    try:
        client.head_bucket(Bucket=bucket_name)
        return f"Bucket {bucket_name!r} exists."
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
            raise  # a wrong key or a bucket of somebody else's: say so, never create around it
    client.create_bucket(Bucket=bucket_name, **_location(client.meta.region_name))
    return f"Bucket {bucket_name!r} created."


def _location(region: str | None) -> dict:
    """S3 refuses a location constraint for its first region and needs one for every other."""
    if not region or region == "us-east-1":
        return {}
    return {"CreateBucketConfiguration": {"LocationConstraint": region}}
