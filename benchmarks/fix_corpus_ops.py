"""Custom ops without fake kernels, for ``fix_corpus.py`` (kept apart: the benchmark imports
patched copies of the corpus, which must not define an op twice)."""

from __future__ import annotations

import torch


@torch.library.custom_op("fixbench::double", mutates_args=())
def double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@torch.library.custom_op("fixbench::project", mutates_args=())
def project(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x @ w


@torch.library.custom_op("fixbench::to_index", mutates_args=())
def to_index(x: torch.Tensor) -> torch.Tensor:
    return (x * 10).long()


@torch.library.custom_op("fixbench::split_halves", mutates_args=())
def split_halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = x.shape[-1] // 2
    return x[..., :half].clone(), x[..., half:].clone()


@torch.library.custom_op("fixbench::positives", mutates_args=())
def positives(x: torch.Tensor) -> torch.Tensor:
    return x[x > 0.5].clone()


@torch.library.custom_op("fixbench::row_sums", mutates_args=())
def row_sums(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=-1)
