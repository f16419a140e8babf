"""Write finished blocks from a background thread so the device never waits on the disk."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

_DONE = object()


class BackgroundBlockWriter:
    """Runs `write(block, arrays)` on a worker thread, at most `depth` blocks behind."""

    def __init__(self, write: Callable[..., None], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self.seconds_writing = 0.0
        self._thread = threading.Thread(target=self._run, name="headact-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue
            start = time.perf_counter()
            try:
                self._write(*item)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
                self._error = exc
            self.seconds_writing += time.perf_counter() - start

    def submit(self, block: int, *arrays: dict | None) -> None:
        """Queue a block's arrays; raises the worker's error, if any, on the caller's thread."""
        self._raise_if_failed()
        self._queue.put((block, *arrays))

    def close(self) -> None:
        """Wait for every queued block to be written, then raise any error (idempotent)."""
        if not self._closed:
            self._closed = True
            self._queue.put(_DONE)
            self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
