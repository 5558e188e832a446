"""Small models shipped with exportwatch for the example manifest.

Each one is a real architecture in miniature with one realistic export problem (``TinyCNN``
has none), so ``exportwatch sweep config/example.exportwatch.yml`` shows ok, fail, mismatch,
xfail, same-as and covered results side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class TinyCNN(nn.Module):
    """Exportable: conv → batch norm → pool → linear."""

    def __init__(self, channels: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels * 2, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(channels * 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class AgeEstimator(nn.Module):
    """A small CNN that predicts an age distribution, returned as its cumulative form
    (``P(age <= bin)``, by ``cumsum``), as ordinal-regression heads do.

    Exports everywhere. Lowered to ExecuTorch with XNNPACK, the convolutions, the linear layer
    and the softmax are delegated, but XNNPACK has no cumulative sum: ``aten.cumsum`` is left to
    ExecuTorch's portable kernels, so the program's XNNPACK coverage is partial (the example of
    ``config/example.executorch.yml``).
    """

    def __init__(self, channels: int = 8, bins: int = 16) -> None:
        super().__init__()
        self.backbone = TinyCNN(channels=channels, classes=bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).softmax(-1).cumsum(-1)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and MLP, the building block of most LLMs.

    Exports with torch.export and the dynamo ONNX exporter; in eval mode without grad,
    ``nn.MultiheadAttention`` takes its fused fast path (``aten::_native_multi_head_attention``),
    which the legacy (TorchScript) ONNX exporter cannot translate.
    """

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class GatedBlock(nn.Module):
    """A residual MLP block; with ``gate_on_mean`` it branches on a tensor's value."""

    def __init__(self, dim: int, *, gate_on_mean: bool = False) -> None:
        super().__init__()
        self.gate_on_mean = gate_on_mean
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.norm(x))
        if self.gate_on_mean and h.mean() > 0:  # data-dependent branch: breaks export
            h = h * 2
        return x + h


class StackedEncoder(nn.Module):
    """Eight identical-looking blocks; one of them (``bad_block``) has a data-dependent ``if``.

    PyTorch's report_exportability tries only the first module of each type, so it never finds
    the bad block; exportwatch deduplicates by what is exported and does.
    """

    def __init__(self, dim: int = 16, depth: int = 8, bad_block: int = 5) -> None:
        super().__init__()
        self.embed = nn.Linear(dim, dim)
        self.encoder = nn.Sequential(*(GatedBlock(dim, gate_on_mean=(i == bad_block)) for i in range(depth)))
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)))


class TopKRouter(nn.Module):
    """A mixture-of-experts router whose expert count comes from ``.item()``."""

    def __init__(self, dim: int = 16, experts: int = 4) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, experts)
        self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.gate(x).softmax(-1)
        active = int((scores.mean(0) > 0.2).sum().item())  # a Python int from tensor data
        out = torch.zeros_like(x)
        for expert in list(self.experts)[: max(active, 1)]:
            out = out + expert(x)
        return out


class NumpyPostprocess(nn.Module):
    """Runs part of its forward through numpy, which export cannot trace."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.post = NumpyClip()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.proj(x))


class NumpyClip(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clipped = np.clip(x.detach().cpu().numpy(), -1.0, 1.0)
        return torch.from_numpy(clipped).to(x.device)


@torch.library.custom_op("exportwatch_examples::fused_scale", mutates_args=())
def fused_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """A custom kernel registered without a fake (meta) kernel: export cannot trace it."""
    return x * factor


class CustomOpModel(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.scale = FusedScale()
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.scale(self.proj(x)))


class FusedScale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_scale(x, 0.5)


@dataclass
class Batch:
    """A user-defined input type that is not registered as a pytree node."""

    features: torch.Tensor
    mask: torch.Tensor


class BatchModel(nn.Module):
    """Takes a custom ``Batch`` object: export needs it registered as a pytree node."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.proj(batch.features) * batch.mask.unsqueeze(-1)


def make_batch_inputs(batch: int = 2, seq: int = 5, dim: int = 8) -> tuple[tuple, dict]:
    """Input callable for :class:`BatchModel` (manifest ``inputs: {callable: ...}``)."""
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(batch, seq, dim, generator=generator)
    mask = torch.ones(batch, seq)
    return (Batch(features, mask),), {}
