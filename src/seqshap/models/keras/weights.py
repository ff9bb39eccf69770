"""Keras weight arrays -> torch tensors, with one clear error when a shape is not the expected one."""

from __future__ import annotations

import numpy as np
import torch


def tensor(a: np.ndarray, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """float32 tensor from a Keras array, with a clear error if its shape is not ``shape``."""
    a = np.asarray(a)
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{what}: weight has shape {tuple(a.shape)}, expected {tuple(shape)}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def count(arrays: list[np.ndarray], want: int, what: str) -> None:
    if len(arrays) != want:
        raise ValueError(f"{what}: expected {want} weight arrays, the file has {len(arrays)}")
