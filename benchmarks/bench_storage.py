"""What object storage costs a reader's image, and what the web process's image cache gives back.

Reads 300 bank-sized PNGs (256², 65 kB, as the readers' renderer writes them) from local disk
(the baseline), from an S3 API (moto's standalone server on loopback: no network in the way, so
a real bucket only adds to its figure), and through ``readerstudy.reading.images``' cache once it
holds them; and lists a training run's prefix (60 files) on both, as a resumed job does.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

IMAGES = 300
SIZE = 256
RUN_FILES = 60


def _moto_server() -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto_server did not answer")


def _median_ms(read, names: list[str]) -> float:
    times = []
    for name in names:
        started = time.perf_counter()
        read(name)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerstudy.settings")
    import boto3
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import FileSystemStorage
    from storages.backends.s3 import S3Storage

    from generator.ml.rendering import render_png
    from readerstudy.core.storage import storage_files
    from readerstudy.reading.images import BytesCache

    server, url = _moto_server()
    try:
        credentials = {"access_key": "bench", "secret_key": "bench", "region_name": "us-east-1"}
        boto3.client(
            "s3", endpoint_url=url, aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        ).create_bucket(Bucket="bench")
        s3 = S3Storage(bucket_name="bench", endpoint_url=url, **credentials)
        with tempfile.TemporaryDirectory() as folder:
            disk = FileSystemStorage(location=folder)
            rng = np.random.default_rng(0)
            names = []
            for index in range(IMAGES):
                png = render_png(rng.uniform(-1, 1, (SIZE, SIZE)).astype(np.float32))
                names.append(disk.save(f"bank/{index:04d}.png", ContentFile(png)))
                s3.save(names[-1], ContentFile(png))
            for index in range(RUN_FILES):
                for storage in (disk, s3):
                    storage.save(f"training/7/run/{'samples/' if index % 3 else ''}f{index}", ContentFile(b"x"))

            def read(storage):
                def one(name: str) -> bytes:
                    with storage.open(name, "rb") as stored:
                        return stored.read()

                return one

            cache = BytesCache(64 * 1024 * 1024)

            def cached(name: str) -> bytes:
                data = cache.get(name)
                if data is None:
                    data = read(s3)(name)
                    cache.put(name, data)
                return data

            read(disk)(names[0]), read(s3)(names[0])  # connections and imports out of the figures
            disk_ms = _median_ms(read(disk), names)
            s3_ms = _median_ms(read(s3), names)
            _median_ms(cached, names)  # fills the cache: each image from S3 once
            hit_ms = _median_ms(cached, names)
            started = time.perf_counter()
            disk_listed = storage_files("training/7/run", disk)
            disk_list_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            s3_listed = storage_files("training/7/run", s3)
            s3_list_ms = (time.perf_counter() - started) * 1000
            assert len(disk_listed) == len(s3_listed) == RUN_FILES
            image_kb = len(read(disk)(names[0])) / 1000
    finally:
        server.kill()
    figures = {
        "disk_read_ms": disk_ms,
        "s3_read_ms": s3_ms,
        "cache_hit_ms": hit_ms,
        "s3_over_disk": s3_ms / disk_ms,
        "cache_hit_over_disk": hit_ms / disk_ms,
        "disk_list_ms": disk_list_ms,
        "s3_list_ms": s3_list_ms,
    }
    print(f"{IMAGES} images of {SIZE}² ({image_kb:.0f} kB), median per read:")
    print(f"  local disk (baseline)   {disk_ms:7.3f} ms")
    print(f"  S3 (moto on loopback)   {s3_ms:7.3f} ms  {s3_ms / disk_ms:6.1f}x the baseline")
    print(f"  reader cache, a hit     {hit_ms:7.3f} ms  {hit_ms / disk_ms:6.2f}x the baseline")
    print(f"a run's prefix of {RUN_FILES} files listed: disk {disk_list_ms:.1f} ms, S3 {s3_list_ms:.1f} ms")
    return figures


if __name__ == "__main__":
    main()
