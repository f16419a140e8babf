"""Bring each batch's statistics to the host without making the GPU wait for the host."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch


class HostCopies:
    """Copies [batch, ...] statistics to reused pinned buffers asynchronously.

    On CUDA a batch is handed to its callback only after the next batch has been launched, so
    the host queues the next forward while the copy runs; on the CPU it is handed over at once.
    """

    def __init__(self, device: torch.device, in_flight: int = 2) -> None:
        self.cuda = device.type == "cuda"
        self.in_flight = in_flight
        self._pending: deque[tuple[torch.cuda.Event, torch.Tensor, Callable]] = deque()
        self._buffers: dict[tuple, list[torch.Tensor]] = {}

    def push(self, stats: torch.Tensor, ready: Callable[[np.ndarray], None]) -> None:
        """Start copying `stats`; `ready(array)` runs once the values are on the host."""
        if not self.cuda:
            ready(stats.numpy())
            return
        host = self._buffer(tuple(stats.shape), stats.dtype)
        host.copy_(stats, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pending.append((event, host, ready))
        while len(self._pending) >= self.in_flight:
            self._finish_oldest()

    def drain(self) -> None:
        """Wait for every copy still in flight and hand it over."""
        while self._pending:
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        event, host, ready = self._pending.popleft()
        event.synchronize()
        ready(host.numpy())

    def _buffer(self, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A pinned buffer of this shape that no copy in flight is using."""
        busy = {id(host) for _, host, _ in self._pending}
        pool = self._buffers.setdefault(shape, [])
        for host in pool:
            if id(host) not in busy:
                return host
        pool.append(torch.empty(shape, dtype=dtype, pin_memory=True))
        return pool[-1]
