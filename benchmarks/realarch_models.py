"""Real architectures at toy sizes, built from code: the real-architecture tier's models.

``transformers`` models are built from config objects (no weights, no Hub access: safe with
``HF_HUB_OFFLINE=1``), ``timm`` ones with ``timm.create_model(name, pretrained=False, ...)`` and
``torchvision`` ones with ``weights=None``. Every size is tiny (hidden 32, 2 layers, a 100-token
vocabulary, 8 tokens, 32×32 images) so a model's sweep takes a second or two, while the module
trees, the caches and the export problems are those of the full-size models.

Factories return modules; the ``*_inputs`` callables return ``(args, kwargs)`` for the
manifest's ``inputs: {callable: ...}``. Used by ``benchmarks/realarch.exportwatch.yml``, which
the test tier ``tests/zoo`` and ``benchmarks/bench_realarch.py`` both run.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # built from config: never reach the Hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

from exportwatch.compat import allow_torchvision_without_its_extension

allow_torchvision_without_its_extension()

VOCAB = 100
HIDDEN = 32
LAYERS = 2
HEADS = 2
BATCH, SEQ = 2, 8
IMAGE = 32


def _ids(seed: int, shape: tuple[int, ...] = (BATCH, SEQ)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, shape, generator=generator)


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _text_inputs(seed: int) -> tuple[tuple, dict]:
    return (), {"input_ids": _ids(seed), "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.long)}


def image_inputs() -> tuple[tuple, dict]:
    """One batch of ``BATCH`` 3×32×32 images, positional (timm, torchvision, HF pixel_values)."""
    return (_randn(10, BATCH, 3, IMAGE, IMAGE),), {}


def pixel_inputs() -> tuple[tuple, dict]:
    """The same images as ``pixel_values=`` (Hugging Face vision models)."""
    return (), {"pixel_values": _randn(10, BATCH, 3, IMAGE, IMAGE)}


# --- decoder-only LLMs (default use_cache=True: a DynamicCache in the output) --------------------


def _decoder_config(config_cls: type, **extra):
    return config_cls(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=1,  # grouped-query attention, as in the real models
        max_position_embeddings=64,
        **extra,
    )


def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(_decoder_config(LlamaConfig))


def tiny_qwen2() -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM(_decoder_config(Qwen2Config))


def tiny_mistral() -> torch.nn.Module:
    """Mistral with a sliding window shorter than the sequence (its distinctive mask)."""
    from transformers import MistralConfig, MistralForCausalLM

    return MistralForCausalLM(_decoder_config(MistralConfig, sliding_window=4))


def tiny_gpt2() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=64)
    return GPT2LMHeadModel(config)


def llm_inputs() -> tuple[tuple, dict]:
    return _text_inputs(1)


def llm_inputs_without_cache() -> tuple[tuple, dict]:
    """``use_cache=False``: logits only, the way decoders are usually exported."""
    args, kwargs = _text_inputs(1)
    return args, {**kwargs, "use_cache": False}


# --- encoder-decoder -----------------------------------------------------------------------------


def tiny_t5() -> torch.nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=VOCAB,
        d_model=HIDDEN,
        d_kv=HIDDEN // HEADS,
        d_ff=2 * HIDDEN,
        num_layers=LAYERS,
        num_decoder_layers=LAYERS,
        num_heads=HEADS,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    return T5ForConditionalGeneration(config)


def tiny_bart() -> torch.nn.Module:
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=VOCAB,
        d_model=HIDDEN,
        encoder_layers=LAYERS,
        decoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS,
        encoder_ffn_dim=2 * HIDDEN,
        decoder_ffn_dim=2 * HIDDEN,
        max_position_embeddings=64,
    )
    return BartForConditionalGeneration(config)


def seq2seq_inputs() -> tuple[tuple, dict]:
    return (), {
        "input_ids": _ids(2),
        "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.long),
        "decoder_input_ids": _ids(3, (BATCH, SEQ // 2)),
    }


WHISPER_MELS = 8
WHISPER_FRAMES = 16  # the encoder wants exactly 2 × max_source_positions frames


def tiny_whisper() -> torch.nn.Module:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=WHISPER_MELS,
        d_model=HIDDEN,
        encoder_layers=LAYERS,
        decoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS,
        encoder_ffn_dim=2 * HIDDEN,
        decoder_ffn_dim=2 * HIDDEN,
        max_source_positions=WHISPER_FRAMES // 2,
        max_target_positions=32,
        decoder_start_token_id=1,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        suppress_tokens=None,
        begin_suppress_tokens=None,
    )
    return WhisperForConditionalGeneration(config)


def tiny_switch_transformers() -> torch.nn.Module:
    """Switch Transformers (mixture of experts, T5-style); ``use_cache=False``."""
    from transformers import SwitchTransformersConfig, SwitchTransformersModel

    config = SwitchTransformersConfig(
        vocab_size=VOCAB,
        d_model=HIDDEN,
        d_kv=HIDDEN // HEADS,
        d_ff=2 * HIDDEN,
        num_layers=LAYERS,
        num_decoder_layers=LAYERS,
        num_heads=HEADS,
        num_experts=4,
        expert_capacity=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
        use_cache=False,
    )
    return SwitchTransformersModel(config)


def seq2seq_inputs_without_mask() -> tuple[tuple, dict]:
    """No ``attention_mask``: the model makes its own in eager mode, but not under export."""
    return (), {"input_ids": _ids(2), "decoder_input_ids": _ids(3, (BATCH, SEQ // 2))}


def whisper_inputs() -> tuple[tuple, dict]:
    return (), {
        "input_features": _randn(4, BATCH, WHISPER_MELS, WHISPER_FRAMES),
        "decoder_input_ids": _ids(5, (BATCH, SEQ // 2)),
    }


# --- encoder-only --------------------------------------------------------------------------------


def tiny_bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=64,
    )
    return BertModel(config)


def tiny_distilbert() -> torch.nn.Module:
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(
        vocab_size=VOCAB,
        dim=HIDDEN,
        n_layers=LAYERS,
        n_heads=HEADS,
        hidden_dim=2 * HIDDEN,
        max_position_embeddings=64,
    )
    return DistilBertModel(config)


def tiny_longformer() -> torch.nn.Module:
    """Longformer: sliding-window attention; whether any token is global is read with .item()."""
    from transformers import LongformerConfig, LongformerModel

    config = LongformerConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=64,
        attention_window=4,  # the sequence (8) is a multiple: no padding
    )
    return LongformerModel(config)


def encoder_inputs() -> tuple[tuple, dict]:
    return _text_inputs(6)


# --- vision (Hugging Face) -----------------------------------------------------------------------


def tiny_vit() -> torch.nn.Module:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=IMAGE,
        patch_size=8,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
    )
    return ViTModel(config)


def tiny_swin() -> torch.nn.Module:
    """Swin: shifted windows (the attention mask is built from Python ints at trace time)."""
    from transformers import SwinConfig, SwinModel

    config = SwinConfig(
        image_size=IMAGE,
        patch_size=4,
        embed_dim=16,
        depths=[2, 2],
        num_heads=[1, 2],
        window_size=4,
        mlp_ratio=2.0,
    )
    return SwinModel(config)


def tiny_convnext() -> torch.nn.Module:
    from transformers import ConvNextConfig, ConvNextModel

    config = ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, patch_size=4)
    return ConvNextModel(config)


# --- audio ---------------------------------------------------------------------------------------

AUDIO_SAMPLES = 400


def tiny_wav2vec2() -> torch.nn.Module:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=2 * HIDDEN,
        conv_dim=(16, 16),
        conv_kernel=(10, 3),
        conv_stride=(5, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        mask_time_prob=0.0,  # eval(): no SpecAugment anyway; keep the config honest
    )
    return Wav2Vec2Model(config)


def audio_inputs() -> tuple[tuple, dict]:
    return (_randn(7, BATCH, AUDIO_SAMPLES),), {}


# --- timm ----------------------------------------------------------------------------------------


def timm_model(name: str, **kwargs) -> torch.nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)``: never downloads weights."""
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


# --- torchvision ---------------------------------------------------------------------------------


def torchvision_model(name: str, **kwargs) -> torch.nn.Module:
    """``torchvision.models.get_model(name, weights=None, **kwargs)``: never downloads weights."""
    import torchvision

    return torchvision.models.get_model(name, weights=None, **kwargs)
