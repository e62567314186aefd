"""The reference training loop: a plain transformers ``Trainer`` on a PEFT model, as the
paper's code trains (token classification), on the same rows, settings and metrics as
bedside's trainer. Used by ``bedside bench train`` to compare speed and quality.
"""

from __future__ import annotations

import tempfile
import time

import torch

from bedside.adapters.backbones import Backbone
from bedside.adapters.decoding import word_tags
from bedside.adapters.encoding import Encoder
from bedside.adapters.examples import Example
from bedside.adapters.kinds import strategy
from bedside.adapters.metrics import compute_metrics
from bedside.adapters.tasks import TaskKind, TaskSpec

from .settings import TrainSettings

BASELINE_KINDS = (TaskKind.token,)  # what the reference Trainer covers, as the paper's code does


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        return {"input_ids": row.input_ids, "attention_mask": [1] * len(row), "labels": row.label}


def hf_model(backbone: Backbone, task: TaskSpec, settings: TrainSettings):
    """``AutoModelForTokenClassification`` with the backbone's weights, wrapped by PEFT
    (TOKEN_CLS: the classifier is trained beside the LoRA weights)."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForTokenClassification

    from bedside.adapters.backbones import transformers_model

    torch.manual_seed(settings.seed)
    model = transformers_model(
        backbone,
        AutoModelForTokenClassification,
        num_labels=task.num_labels,
        id2label=dict(enumerate(task.labels)),
        label2id={label: i for i, label in enumerate(task.labels)},
        classifier_dropout=settings.head_dropout,
    )
    if settings.attention_dropout is not None:  # as bedside's trainer sets it
        from .trainer import set_attention_dropout

        set_attention_dropout(model, settings.attention_dropout)
    lora = LoraConfig(
        task_type=TaskType.TOKEN_CLS,
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
    )
    return get_peft_model(model, lora)


def train_hf(
    task: TaskSpec, splits: dict[str, list[Example]], settings: TrainSettings, backbone: Backbone, progress: bool = True
) -> dict:
    """Train with ``Trainer`` (no evaluation during training), then score the test split."""
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    if task.kind not in BASELINE_KINDS:
        raise ValueError("the Trainer baseline covers token tasks (NER), as the paper's code does")
    if settings.method.value != "lora":
        raise ValueError("the Trainer baseline trains LoRA")
    encoder = Encoder(backbone.tokenizer, task, settings.max_length)
    train_rows = [encoder.encode(e) for e in splits["train"]]
    test_rows = [encoder.encode(e) for e in splits["test"]]
    model = hf_model(backbone, task, settings)
    with tempfile.TemporaryDirectory(prefix="bedside-hf-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.eval_batch_size,
            learning_rate=settings.learning_rate(),
            num_train_epochs=settings.epochs,
            weight_decay=settings.weight_decay,
            warmup_steps=settings.warmup_ratio,
            lr_scheduler_type="linear",
            optim="adamw_torch",
            max_grad_norm=settings.max_grad_norm or 0.0,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            seed=settings.seed,
            data_seed=settings.seed,
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if settings.group_by_length else "random",  # as bedside's
            use_cpu=settings.device == "cpu" or not torch.cuda.is_available(),
            disable_tqdm=not progress,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_Rows(train_rows),
            data_collator=DataCollatorForTokenClassification(backbone.tokenizer),
        )
        start = time.perf_counter()
        output = trainer.train()
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predictions = trainer.predict(_Rows(test_rows)).predictions
        eval_seconds = time.perf_counter() - start
    gold = [strategy(task.kind).gold(e) for e in splits["test"]]
    pred = [
        word_tags(task, torch.from_numpy(p[: len(row)])[row.word_starts], row.n_words, row.word_index)[0]
        for p, row in zip(predictions, test_rows)
    ]
    return {
        "metrics": {f"test_{k}": v for k, v in compute_metrics(task, gold, pred).items()},
        "train_seconds": train_seconds,
        "train_examples_per_s": len(train_rows) * settings.epochs / train_seconds,
        "trainer_samples_per_s": output.metrics.get("train_samples_per_second"),
        "eval_examples_per_s": len(test_rows) / eval_seconds,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
