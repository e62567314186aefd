"""Whole notes as benchmark work: the requests, the model rows the service makes of them (for
the bare-encoder ceiling) and what a hospital would run instead (a transformers pipeline per task
on one note at a time).

Tasks in turn: ``ner``, ``mortality``, ``length_of_stay`` through /predict, and /extract (NER then
relations over the candidate pairs). A note's size is its word pieces (no special tokens): the
unit of every tokens/s figure, whatever rows the reading makes of it.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bedside.adapters.encoding import EncodedRow
from bedside.adapters.kinds import PAIR, as_span, local_window, note_candidates, pair_items
from bedside.adapters.kinds.pair import CONTEXT_CHARS_PER_TOKEN
from bedside.adapters.limits import EntitiesTooFar
from bedside.adapters.predict import Predictor

from .soak import _pct

TASKS = ("ner", "mortality", "length_of_stay", "extract")


def read_notes(path: Path, columns: tuple[str, ...] = ("note",)) -> list[str]:
    """The non-empty texts of ``columns`` (ACI-BENCH: ``note``, ``dialogue``), in file order."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [row[c] for c in columns for row in rows if (row.get(c) or "").strip()]


@dataclass
class NoteRequest:
    task: str  # a /predict task, or "extract"
    text: str
    tokens: int  # the note's word pieces
    rows: list[EncodedRow] = field(default_factory=list)  # what the service forwards for it
    pairs: list[dict] = field(default_factory=list)  # extract: the candidate pair items

    @property
    def row_tokens(self) -> int:
        """Tokens of every row forwarded for the note (windows, pairs, special tokens)."""
        return sum(len(row) for row in self.rows)

    @property
    def path(self) -> str:
        return "/extract" if self.task == "extract" else "/predict"

    def body(self) -> dict:
        return {"text": self.text} if self.task == "extract" else {"task": self.task, "texts": [self.text]}


def build_requests(runtime, notes: list[str]) -> list[NoteRequest]:
    """One request per note, tasks in turn, with the rows the served adapters make of it (for
    extract: the NER rows and one row per candidate pair of the entities found in process)."""
    settings = runtime.settings
    predictors = {
        t: Predictor(runtime.model, s.resident.slot, settings.max_length)
        for t, s in runtime.states.items()
        if s.resident is not None
    }
    missing = sorted({"ner", "mortality", "length_of_stay", "relations"} - set(predictors))
    if missing:
        raise ValueError(f"the store has no active adapter for {', '.join(missing)}")
    tokenizer = predictors["ner"].encoder.tokenizer
    out = []
    for i, text in enumerate(notes):
        task = TASKS[i % len(TASKS)]
        request = NoteRequest(task, text, len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        reader = predictors["ner" if task == "extract" else task]
        request.rows = list(reader.encode(text).rows)
        if task == "extract":
            (ner,) = reader.predict([text])
            entities = ner["entities"]
            relations = predictors["relations"]
            pairs, _ = note_candidates(text, entities, settings.input_limits(), relations.encoder.room)
            request.pairs = pair_items(text, entities, pairs)
            for item in request.pairs:
                try:
                    request.rows.extend(relations.encode(item).rows)
                except EntitiesTooFar:  # more tokens apart than one row holds: the service skips it too
                    continue
        out.append(request)
    return out


def bare_sample(requests: list[NoteRequest], every: int = 4) -> list[NoteRequest]:
    """Every ``every``-th round of the tasks (a run of consecutive requests, one per task): the
    same mix of tasks and lengths in a quarter of the time, to measure the bare encoder between
    load levels."""
    n = len(TASKS)
    return [r for i, r in enumerate(requests) if (i // n) % every == 0]


def bare_seconds_per_row_token(encoder, requests: list[NoteRequest], batch: int = 32, rounds: int = 1) -> float:
    """Seconds per forwarded row token when the bare base encoder (no adapters, no heads) runs every
    row of every request, in batches of ``batch`` rows sorted by length: the ceiling of any torch
    serving. A set of notes then costs its row tokens times this, whatever its mix of tasks."""
    from bedside.adapters.encoding import pad_rows

    rows = sorted((row for r in requests for row in r.rows), key=len)
    batches = [[torch.from_numpy(a) for a in pad_rows(rows[i : i + batch])] for i in range(0, len(rows), batch)]
    with torch.inference_mode():
        encoder(input_ids=batches[0][0], attention_mask=batches[0][1])  # warm-up
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for ids, mask in batches:
                encoder(input_ids=ids, attention_mask=mask)
            best = min(best, time.perf_counter() - start)
    return best / sum(r.row_tokens for r in requests)


def note_pipelines(backbone, max_length: int) -> dict:
    """A hospital's own serving: a full model and transformers pipeline per task. NER reads the
    whole note in windows of ``max_length`` (``stride`` half a window, ``aggregation_strategy``
    simple); classification truncates at ``max_length`` (the paper's reading)."""
    from copy import deepcopy

    from transformers import pipeline

    from bedside.adapters.kinds import strategy
    from bedside.adapters.tasks import PRESETS

    from .baseline import _model

    tokenizer = deepcopy(backbone.tokenizer)
    tokenizer.model_max_length = max_length
    pipes = {}
    for name in ("ner", "mortality", "length_of_stay", "relations"):
        task = PRESETS[name]
        kind = strategy(task.kind)
        options = (
            {"aggregation_strategy": "simple", "stride": max_length // 2}
            if kind.pipeline_task == "token-classification"
            else {}
        )
        model = _model(backbone, kind, task.num_labels)
        pipes[name] = pipeline(kind.pipeline_task, model=model, tokenizer=tokenizer, device=-1, **options)
    return pipes


def pipeline_call(pipes: dict, request: NoteRequest, max_length: int) -> None:
    classify = {"truncation": True, "max_length": max_length}
    if request.task in ("ner", "extract"):
        pipes["ner"](request.text)
    if request.task == "extract":  # then each candidate pair in its local window, as bedside reads it
        for item in request.pairs:
            reach = max_length * CONTEXT_CHARS_PER_TOKEN
            local, head, tail = local_window(item["text"], as_span(item["head"]), as_span(item["tail"]), reach)
            text, _ = PAIR.pipeline_input({"text": local, "head": head, "tail": tail})  # entities marked
            pipes["relations"](text, **classify)
    elif request.task != "ner":
        pipes[request.task](request.text, **classify)


def pipeline_rate(pipes: dict, requests: list[NoteRequest], seconds: float, max_length: int) -> dict:
    """Notes/s and note tokens/s through the pipelines, one note at a time, tasks in turn (at least
    one note per task), and per task the seconds per note token: what any mix of notes costs."""
    with torch.inference_mode():
        pipeline_call(pipes, requests[0], max_length)  # warm-up
        latencies, tokens, i = [], 0, 0
        spent: dict[str, list[float]] = {}  # task: [seconds, note tokens]
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or i < len(TASKS):
            request = requests[i % len(requests)]
            t0 = time.perf_counter()
            pipeline_call(pipes, request, max_length)
            latencies.append(time.perf_counter() - t0)
            tokens += request.tokens
            cost = spent.setdefault(request.task, [0.0, 0])
            cost[0] += latencies[-1]
            cost[1] += request.tokens
            i += 1
        elapsed = time.perf_counter() - start
    return {
        "notes_per_s": len(latencies) / elapsed,
        "tokens_per_s": tokens / elapsed,
        "p50_ms": _pct(latencies, 50),
        "answered": len(latencies),
        "seconds_per_token": {task: s / max(n, 1) for task, (s, n) in spent.items()},
    }
