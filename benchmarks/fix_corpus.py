"""Failing models for ``bench_fixes.py``: the patterns users hit (values read from tensors,
custom ops without fake kernels), each with the input ``INPUTS`` names. The benchmark applies
every fix exportwatch shows to a copy of this file and exports again."""

from __future__ import annotations

import torch
from fix_corpus_ops import double, positives, project, row_sums, split_halves, to_index
from torch import nn

#: model name -> the input shape it is swept with (float32, uniform in [0, 1)).
INPUTS: dict[str, list[int]] = {}


def case(shape: list[int]):  # type: ignore[no-untyped-def]
    def register(cls):  # type: ignore[no-untyped-def]
        INPUTS[cls.__name__] = shape
        return cls

    return register


@case([8])
class CountBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x > 0.5).sum().item()
        if n > 2:
            return x * 2
        return x


@case([8])
class CountSlice(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x > 0.5).sum().item()
        return x[:n] if n > 1 else x


@case([8])
class FloatThreshold(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        peak = x.max().item()
        if peak > 0.25:
            return x / peak
        return x


@case([8])
class FloatMax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        peak = x.abs().max().item()
        return x / max(peak, 1.0)


@case([8])
class TwoIndependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = (x < 0.5).sum().item()
        high = (x >= 0.5).sum().item()
        y = x * 2 if low > 1 else x
        return y + 1 if high > 1 else y


@case([8])
class ZerosOfCount(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x > 0.5).sum().item()
        pad = torch.zeros(n)
        return torch.cat([x, pad]) if n != 3 else x


@case([8])
class CompareTwoValues(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = (x > 0.3).sum().item()
        b = (x > 0.7).sum().item()
        if a >= b + 1:
            return x * 2
        return x


@case([8])
class InHelper(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = _count(x)
        if n > 2:
            return x * 2
        return x


def _count(x: torch.Tensor) -> torch.Tensor:
    return (x > 0.5).sum().item()  # type: ignore[return-value]


@case([8])
class Unnamed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x > 0.5).sum().item() > 2:
            return x * 2
        return x


@case([8])
class TensorBool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 1:
            return x * 2
        return x


@case([8])
class IntSpecialised(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int((x > 0.5).sum())
        return x.repeat(n)


@case([8])
class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate = CountBranch()
        self.scale = FloatThreshold()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.gate(x))


@case([4, 8])
class OpSameShape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return double(x) + 1


@case([4, 8])
class OpMatmul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return project(x, self.w).relu()


@case([4, 8])
class OpDtype(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_index(x).float() + x


@case([4, 8])
class OpTuple(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = split_halves(x)
        return a * b


@case([4, 8])
class OpDataDependentSize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return positives(x) * 2


@case([4, 8])
class OpReduce(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return row_sums(x) + x[:, 0]


@case([8])
class OpAndCount(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x > 0.5).sum().item()
        y = double(x)
        return y[:n] if n > 2 else y
