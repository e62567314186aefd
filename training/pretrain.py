"""Domain pre-training: continued masked-language-model training of a compact encoder on
in-house text, written as a backbone folder usable everywhere a backbone is.

Corpus files: plain text (one passage per line or paragraph), CoNLL token files (a sentence
per blank-line block), BLUE-style TSV (the sentence column) and CSV (the longest text column
per row): whatever the hospital has, read as passages.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bedside.adapters.backbones import load_backbone, transformers_model


def _conll_passages(lines: list[str]) -> list[str]:
    passages: list[str] = []
    words: list[str] = []
    for line in lines + [""]:
        if not line.strip():
            if words:
                passages.append(" ".join(words))
            words = []
        else:
            words.append(line.split("\t")[0].split(" ")[0])
    return passages


def read_passages(path: str | Path) -> list[str]:
    file = Path(path)
    if file.is_dir():
        return [
            p
            for child in sorted(file.iterdir())
            if child.suffix in {".txt", ".tsv", ".csv", ".conll"}
            for p in read_passages(child)
        ]
    text = file.read_text(encoding="utf-8", errors="replace")
    if file.suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))[1:]
        return [max(row, key=len) for row in rows if row and max(row, key=len).strip()]
    lines = text.splitlines()
    if file.suffix in {".tsv", ".conll"}:
        cells = [line.split("\t") for line in lines if line.strip()]
        if cells and all(len(c) <= 3 and len(c[0].split()) == 1 for c in cells[:50]):
            return _conll_passages(lines)  # token per line
        return [max(c, key=len) for c in cells]  # sentence + label columns
    return [line.strip() for line in lines if line.strip()]


def mlm_loss(model, batch: dict) -> torch.Tensor:
    """Masked-LM loss; for BERT-style heads the vocabulary projection runs on the masked
    positions only (15 % of tokens), not on every token as the stock forward does."""
    head = getattr(model, "cls", None)
    if head is None:
        return model(**batch).loss
    labels = batch["labels"]
    hidden = model.base_model(
        input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")
    ).last_hidden_state
    masked = labels != -100
    return torch.nn.functional.cross_entropy(head(hidden[masked]), labels[masked])


def pretrain(
    base: str,
    corpus: Sequence[str | Path],
    out: str | Path,
    steps: int = 200,
    batch_size: int = 16,
    max_length: int = 128,
    lr: float = 5e-5,
    mlm_probability: float = 0.15,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Continue MLM training of ``base`` on ``corpus``; write a backbone folder to ``out``."""
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling

    out = Path(out)
    passages = [p for c in corpus for p in read_passages(c)]
    if not passages:
        raise ValueError("the corpus has no text")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    backbone = load_backbone(base)
    tokenizer = backbone.tokenizer
    model = transformers_model(backbone, AutoModelForMaskedLM)
    model.tie_weights()  # the MLM decoder shares the word embeddings; its transform starts fresh
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
    encoded = [tokenizer(p, truncation=True, max_length=max_length)["input_ids"] for p in passages]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, (steps - s) / steps)
    )
    model.train()
    losses, start = [], time.perf_counter()
    bar = tqdm(range(steps), desc="pre-training (MLM)", disable=not progress, unit="step")
    for _ in bar:
        batch = collator([{"input_ids": ids} for ids in rng.sample(encoded, min(batch_size, len(encoded)))])
        loss = mlm_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    model.base_model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    first, last = losses[: max(1, steps // 10)], losses[-max(1, steps // 10) :]
    record = {
        "base": base,
        "corpus": [str(c) for c in corpus],
        "passages": len(passages),
        "steps": steps,
        "batch_size": batch_size,
        "max_length": max_length,
        "lr": lr,
        "seed": seed,
        "loss_first": sum(first) / len(first),
        "loss_last": sum(last) / len(last),
        "seconds": time.perf_counter() - start,
    }
    (out / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")  # last: marks done
    return out
