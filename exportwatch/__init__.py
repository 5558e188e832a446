"""exportwatch: tells PyTorch teams, on every pull request, whether their models still export."""

from __future__ import annotations

__version__ = "0.1.0"
