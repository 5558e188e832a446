"""Tiny Hugging Face ``transformers`` models built from code (no weights, no download).

Real architectures at toy sizes (hidden 64, 2 layers, 2 heads, a 1000-token vocabulary), so a
sweep exercises the same module trees and export problems as the full-size models in seconds.
Factories return models in eval mode; ``*_inputs`` callables return ``(args, kwargs)`` for the
manifest's ``inputs: {callable: ...}``. Used by ``benchmarks/scale.exportwatch.yml``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # built from config: never reach the Hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from exportwatch.compat import allow_torchvision_without_its_extension

allow_torchvision_without_its_extension()  # a torchvision whose C++ ops cannot load breaks transformers

VOCAB = 1000
HIDDEN = 64
LAYERS = 2
HEADS = 2
BATCH, SEQ = 2, 16


def _ids(seed: int, shape: tuple[int, ...] = (BATCH, SEQ)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, shape, generator=generator)


def tiny_bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * HIDDEN,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def bert_inputs() -> tuple[tuple, dict]:
    return (), {"input_ids": _ids(0), "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.long)}


def tiny_gpt2() -> torch.nn.Module:
    """GPT-2 with its default ``use_cache=True``: the output carries the key/value cache."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=64)
    return GPT2LMHeadModel(config).eval()


def gpt2_inputs() -> tuple[tuple, dict]:
    return (), {"input_ids": _ids(1)}


def tiny_t5() -> torch.nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=VOCAB,
        d_model=HIDDEN,
        d_kv=HIDDEN // HEADS,
        d_ff=4 * HIDDEN,
        num_layers=LAYERS,
        num_decoder_layers=LAYERS,
        num_heads=HEADS,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    return T5ForConditionalGeneration(config).eval()


def t5_inputs() -> tuple[tuple, dict]:
    return (), {"input_ids": _ids(2), "decoder_input_ids": _ids(3, (BATCH, 8))}


def tiny_vit() -> torch.nn.Module:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * HIDDEN,
    )
    return ViTModel(config).eval()


def vit_inputs() -> tuple[tuple, dict]:
    generator = torch.Generator().manual_seed(4)
    return (torch.randn(BATCH, 3, 32, 32, generator=generator),), {}
