"""Reuse of the recurrence's large internal buffers (noise, adjoints) between calls."""

from __future__ import annotations

import threading

import torch


class Workspace:
    """Reuses the large internal buffers (noise, adjoints) between calls.

    A fresh tensor the size of a whole batch's states costs page faults on every epoch, a
    sizeable share of the whole epoch, so those buffers are handed back after use and handed
    out again to the next call they fit.
    """

    def __init__(self, max_buffers: int = 4) -> None:
        self._free: list[torch.Tensor] = []
        self._max_buffers = max_buffers
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        needed = 1
        for size in shape:
            needed *= size
        with self._lock:
            fitting = [
                buffer
                for buffer in self._free
                if buffer.dtype == like.dtype and buffer.device == like.device and buffer.numel() >= needed
            ]
            if fitting:
                chosen = min(fitting, key=torch.Tensor.numel)
                self._free = [buffer for buffer in self._free if buffer is not chosen]
                return chosen[:needed].view(shape)
        return torch.empty(shape, dtype=like.dtype, device=like.device)

    def give_back(self, view: torch.Tensor) -> None:
        flat = view if view._base is None else view._base
        with self._lock:
            self._free.append(flat.view(-1))
            self._free.sort(key=torch.Tensor.numel, reverse=True)
            del self._free[self._max_buffers :]


WORKSPACE = Workspace()
