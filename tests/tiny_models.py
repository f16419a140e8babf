"""Tiny random models of every supported family, saved with save_pretrained like checkpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CORPUS = [
    "The cat sat on the mat and looked at the dog.",
    "Attention heads route information between tokens in a transformer.",
    "What is the capital of France? Paris is the capital of France.",
    "How does photosynthesis work in green plants and algae?",
    "Fine-tuning changes some heads much more than others.",
    "A quick brown fox jumps over the lazy dog near the river bank.",
    "Researchers compare models before and after training on new data.",
    "Numbers like 1, 2, 3 and 42 appear in many sentences too.",
]

HIDDEN, HEADS, LAYERS, FFN, POSITIONS = 32, 4, 3, 64, 128


@dataclass(frozen=True)
class Family:
    """How to build one family's tiny model and where its projections live (for checks)."""

    model_type: str
    config: str
    head_class: str
    projection: str  # relative to the base model, with {layer}
    kwargs: dict
    pad_token: bool = True


def _decoder(**extra) -> dict:
    base = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                intermediate_size=FFN, max_position_embeddings=POSITIONS)
    base.update(extra)
    return base


FAMILIES: dict[str, Family] = {
    "gpt2": Family("gpt2", "GPT2Config", "GPT2LMHeadModel", "h.{layer}.attn.c_proj",
                   dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS),
                   pad_token=False),
    "llama": Family("llama", "LlamaConfig", "LlamaForCausalLM", "layers.{layer}.self_attn.o_proj",
                    _decoder(num_key_value_heads=2)),
    "mistral": Family("mistral", "MistralConfig", "MistralForCausalLM",
                      "layers.{layer}.self_attn.o_proj", _decoder(num_key_value_heads=1)),
    "qwen2": Family("qwen2", "Qwen2Config", "Qwen2ForCausalLM", "layers.{layer}.self_attn.o_proj",
                    _decoder(num_key_value_heads=2)),
    "qwen3": Family("qwen3", "Qwen3Config", "Qwen3ForCausalLM", "layers.{layer}.self_attn.o_proj",
                    _decoder(num_key_value_heads=2, head_dim=12)),
    "gemma": Family("gemma", "GemmaConfig", "GemmaForCausalLM", "layers.{layer}.self_attn.o_proj",
                    _decoder(num_key_value_heads=1, head_dim=16)),
    "gemma2": Family("gemma2", "Gemma2Config", "Gemma2ForCausalLM",
                     "layers.{layer}.self_attn.o_proj",
                     _decoder(num_key_value_heads=2, head_dim=8, sliding_window=16)),
    "gemma3_text": Family("gemma3_text", "Gemma3TextConfig", "Gemma3ForCausalLM",
                          "layers.{layer}.self_attn.o_proj",
                          _decoder(num_key_value_heads=2, head_dim=8, sliding_window=16)),
    "olmo2": Family("olmo2", "Olmo2Config", "Olmo2ForCausalLM", "layers.{layer}.self_attn.o_proj",
                    _decoder()),
    "phi3": Family("phi3", "Phi3Config", "Phi3ForCausalLM", "layers.{layer}.self_attn.o_proj",
                   _decoder(num_key_value_heads=2, pad_token_id=0)),
    "gpt_neox": Family("gpt_neox", "GPTNeoXConfig", "GPTNeoXForCausalLM",
                       "layers.{layer}.attention.dense", _decoder()),
    "bert": Family("bert", "BertConfig", "BertForMaskedLM",
                   "encoder.layer.{layer}.attention.output.dense", _decoder()),
    "roberta": Family("roberta", "RobertaConfig", "RobertaForMaskedLM",
                      "encoder.layer.{layer}.attention.output.dense",
                      _decoder(max_position_embeddings=POSITIONS + 2, pad_token_id=0)),
    "xlm-roberta": Family("xlm-roberta", "XLMRobertaConfig", "XLMRobertaForMaskedLM",
                          "encoder.layer.{layer}.attention.output.dense",
                          _decoder(max_position_embeddings=POSITIONS + 2, pad_token_id=0)),
    "distilbert": Family("distilbert", "DistilBertConfig", "DistilBertForMaskedLM",
                         "transformer.layer.{layer}.attention.out_lin",
                         dict(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
                              max_position_embeddings=POSITIONS)),
    "opt": Family("opt", "OPTConfig", "OPTForCausalLM", "decoder.layers.{layer}.self_attn.out_proj",
                  dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                       ffn_dim=FFN, word_embed_proj_dim=HIDDEN,
                       max_position_embeddings=POSITIONS)),
    "falcon": Family("falcon", "FalconConfig", "FalconForCausalLM",
                     "h.{layer}.self_attention.dense",
                     dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                          max_position_embeddings=POSITIONS)),
    "bloom": Family("bloom", "BloomConfig", "BloomForCausalLM", "h.{layer}.self_attention.dense",
                    dict(hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS)),
    "phi": Family("phi", "PhiConfig", "PhiForCausalLM", "layers.{layer}.self_attn.dense",
                  _decoder()),
    "gptj": Family("gptj", "GPTJConfig", "GPTJForCausalLM", "h.{layer}.attn.out_proj",
                   dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, rotary_dim=4,
                        n_positions=POSITIONS)),
    "gpt_neo": Family("gpt_neo", "GPTNeoConfig", "GPTNeoForCausalLM",
                      "h.{layer}.attn.attention.out_proj",
                      dict(hidden_size=HIDDEN, num_layers=LAYERS, num_heads=HEADS,
                           attention_types=[[["global", "local"], 1], [["global"], 1]],
                           max_position_embeddings=POSITIONS, window_size=16)),
}


def build_tokenizer(folder: Path, *, pad_token: bool = True):
    """A small byte-level BPE tokenizer trained on CORPUS, saved to `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>" if pad_token else None, model_max_length=POSITIONS,
    )
    fast.save_pretrained(folder)
    return fast


def build_model(family: str, folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random `family` model and its tokenizer to `folder`; return the folder."""
    import torch
    import transformers

    spec = FAMILIES[family]
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, pad_token=spec.pad_token)
    config_cls = getattr(transformers, spec.config)
    kwargs = dict(spec.kwargs)
    kwargs.setdefault("pad_token_id", tokenizer.pad_token_id if spec.pad_token else None)
    config = config_cls(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, **kwargs)
    torch.manual_seed(seed)
    model = getattr(transformers, spec.head_class)(config)
    # Random init gives tiny, near-identical norms; widen them so heads differ clearly.
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return folder


def write_texts(path: Path, texts: list[str] | None = None) -> Path:
    """A JSON array of texts (records in the original's format) at `path`."""
    texts = texts or [
        "The cat sat on the mat.",
        "Attention heads route information between tokens in a transformer, and some of them "
        "matter more than others after fine-tuning.",
        "What is the capital of France?",
        "Short.",
        "Numbers like 1, 2, 3 and 42 appear in many sentences too, and the dog looked at them.",
        "How does photosynthesis work?",
        "Researchers compare models before and after training.",
        "A quick brown fox jumps over the lazy dog near the river bank on a sunny day.",
        "Fine-tuning changes some heads much more than others.",
        "Yes.",
        "The river bank was green.",
    ]
    records = [{"text": t} if i % 3 == 0 else {"input": t} if i % 3 == 1 else t
               for i, t in enumerate(texts)]
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
