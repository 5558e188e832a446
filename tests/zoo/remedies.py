"""Factories that apply a library hint's remedy to a real model (tests/zoo/test_library_hints.py)."""

from __future__ import annotations

import realarch_models  # first: lets torchvision import without its C++ extension
import torch


def _with_registered_caches(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers hint's second remedy, exactly as the hint spells it."""
    from transformers.exporters.exporter_dynamo import register_cache_pytrees_for_model

    register_cache_pytrees_for_model(model)
    return model


def llama_with_registered_caches() -> torch.nn.Module:
    return _with_registered_caches(realarch_models.tiny_llama())


def t5_with_registered_caches() -> torch.nn.Module:
    return _with_registered_caches(realarch_models.tiny_t5())
