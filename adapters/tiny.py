"""A tiny, randomly initialised BERT and tokenizer built in code (tests, no files)."""

from __future__ import annotations

import string

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from .backbones import Backbone, drop_pooler

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Frequent words get one token each; anything else falls back to characters.
COMMON_WORDS = [
    "the",
    "a",
    "an",
    "of",
    "and",
    "or",
    "in",
    "on",
    "with",
    "for",
    "to",
    "was",
    "is",
    "were",
    "are",
    "no",
    "not",
    "denies",
    "patient",
    "history",
    "of",
    "pain",
    "chest",
    "fever",
    "cough",
    "shock",
    "septic",
    "sepsis",
    "pneumonia",
    "failure",
    "heart",
    "kidney",
    "acute",
    "chronic",
    "given",
    "started",
    "improved",
    "worsened",
    "after",
    "held",
    "because",
    "caused",
    "showed",
    "ordered",
    "evaluate",
    "setting",
    "x-ray",
    "ct",
    "scan",
    "mri",
    "blood",
    "culture",
    "lactate",
    "troponin",
    "creatinine",
    "ecg",
    "iv",
    "oral",
    "vancomycin",
    "insulin",
    "lasix",
    "aspirin",
    "heparin",
    "metoprolol",
    "intubated",
    "icu",
    "admitted",
    "discharged",
    "surgery",
    "stable",
    "severe",
    "mild",
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab_list = SPECIALS + chars + [f"##{c}" for c in chars] + COMMON_WORDS
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )


def tiny_backbone(seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Backbone:
    """A deterministic random BERT: the same seed gives the same fingerprint."""
    return random_backbone(seed, hidden_size, layers, heads=2, intermediate=hidden_size * 2)


#: Real encoder shapes (hidden, layers, heads, intermediate, vocabulary): speed depends on these, not on weights.
SHAPES = {"tiny": (32, 2, 2, 64, 0), "minilm-l6": (384, 6, 12, 1536, 30522), "bert-base": (768, 12, 12, 3072, 30522)}


def shaped_backbone(shape: str, seed: int = 0) -> Backbone:
    """A random BERT of one of :data:`SHAPES` with the tiny tokenizer (ids stay in its range)."""
    hidden, layers, heads, intermediate, vocab = SHAPES[shape]
    return random_backbone(seed, hidden, layers, heads, intermediate, vocab, name=f"random-{shape}-seed{seed}")


def random_backbone(
    seed: int, hidden: int, layers: int, heads: int, intermediate: int, vocab: int = 0, name: str = ""
) -> Backbone:
    tokenizer = tiny_tokenizer()
    config = BertConfig(
        vocab_size=max(vocab, len(tokenizer)),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        attn_implementation="sdpa",
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder = BertModel(config, add_pooling_layer=False)
    drop_pooler(encoder)
    encoder.eval()
    return Backbone(encoder=encoder, tokenizer=tokenizer, name=name or f"tiny-random-bert-seed{seed}")
