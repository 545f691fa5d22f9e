"""The bytes of the bank images readers see: read from storage once, then kept in a bounded
in-process cache.

A bank image's bytes never change once stored (the image is evidence; its storage key is random
and never reused), so a web process may keep them. On S3 every read is a round trip that would
otherwise land inside a reader's timed trial. Both classes go through the same cache, so a cache
hit says nothing about an image's class (the blinding audit's timing check runs with it on).
"""

import threading
from collections import OrderedDict

from django.conf import settings

from generator.models import BankImage


class BytesCache:
    """Least recently used first out, bounded by the bytes it holds; safe across threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self.lock:
            data = self.entries.get(key)
            if data is not None:
                self.entries.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = data
            self.held_bytes += len(data)
            while self.held_bytes > self.max_bytes:
                _, dropped = self.entries.popitem(last=False)
                self.held_bytes -= len(dropped)


_cache = BytesCache(settings.READER_IMAGE_CACHE_MB * 1024 * 1024)


def bank_image_bytes(image: BankImage) -> bytes:
    """The image's PNG as stored, from the cache when this process has read it before."""
    key = image.file.name
    data = _cache.get(key)
    if data is None:
        with image.file.open("rb") as stored:
            data = stored.read()
        _cache.put(key, data)
    return data
