"""From a validated request to an answer: lease, tokenise, batch, decode, provenance."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from adapters.encoding import TooLongError
from adapters.tasks import TaskKind

from . import metrics
from .batcher import Batcher, QueueFull
from .errors import APIError, busy
from .runtime import Lease, Runtime
from .settings import SERVICE_VERSION, ServiceSettings

# i2b2 2010 candidate pairs: (head type, tail type).
CANDIDATE_TYPES = {("treatment", "problem"), ("test", "problem"), ("problem", "problem")}


class Engine:
    """Everything a request handler needs, created once per worker process."""

    def __init__(self, settings: ServiceSettings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime(settings)
        self.batcher = Batcher(self.runtime.model, self.runtime.lock, settings.max_batch_rows,
                               settings.max_wait_ms, settings.max_queue_rows, settings.max_padding)

    def start(self, poll: bool = True) -> None:
        self.runtime.start(poll=poll)

    def close(self) -> None:
        self.runtime.stop()
        self.batcher.close()

    def provenance(self, lease: Lease) -> dict[str, str]:
        info = lease.resident.info
        return {"task": info.task, "version": info.version, "sha256": info.sha256, "method": info.method,
                "base_fingerprint": self.runtime.backbone.fingerprint, "service_version": SERVICE_VERSION,
                "backend": self.runtime.backend.label}

    def check_task(self, task: str) -> None:
        if task not in self.runtime.states:  # an allow-list: the name never reaches the filesystem
            raise APIError(404, "unknown_task", "unknown task")

    def check_ready(self, task: str) -> None:
        """404 for an unknown task, 503 for one without a loaded adapter (before its input shape is known)."""
        self.check_task(task)
        if self.runtime.states[task].status != "ready":
            raise _not_ready()

    async def run(self, task: str, items: list[Any]) -> tuple[list[dict], dict]:
        """Predict ``items`` with the task's active version; return results and provenance."""
        self.check_task(task)
        if len(items) > self.settings.max_items:
            raise APIError(413, "too_many_items", f"at most {self.settings.max_items} items per request")
        with self.runtime.lease(task) as lease:
            if lease is None:
                raise _not_ready()
            predictor = lease.predictor
            predictor.encoder.truncate = self.settings.truncate
            if self.settings.max_length:
                predictor.encoder.max_length = self.settings.max_length
            t0 = time.perf_counter()
            try:
                encoded = [predictor.encode(item) for item in items]
            except TooLongError as exc:
                raise APIError(422, "too_long", f"an input has {exc.n_tokens} tokens; the limit is "
                               f"{exc.max_length}") from None
            except ValueError as exc:
                raise APIError(422, "invalid_input", _safe(exc)) from None
            specials = predictor.encoder.tokenizer.num_special_tokens_to_add()
            if any(_no_content(row, specials) for row, _ in encoded):  # e.g. only control characters
                raise APIError(422, "invalid_input", "an input has no text once tokenised")
            metrics.TOKENIZE_SECONDS.labels(task).observe(time.perf_counter() - t0)
            try:
                job = self.batcher.submit([row for row, _ in encoded], lease.resident.slot)
            except QueueFull:
                raise busy() from None
            try:
                logits = await asyncio.wait_for(asyncio.wrap_future(job.future), self.settings.request_timeout_s)
            except asyncio.TimeoutError:
                job.cancel()
                raise APIError(504, "timeout", "the request took too long") from None
            except asyncio.CancelledError:
                job.cancel()  # the client went away: free the slot
                raise
            except Exception:
                raise APIError(500, "inference_failed", "the model failed on this batch; retry with fewer items") \
                    from None
            results = [predictor.decode(row, lg, ctx) for (row, ctx), lg in zip(encoded, logits)]
            return results, self.provenance(lease)

    async def extract(self, text: str) -> dict:
        """NER, then relations over every i2b2 candidate pair of the entities found."""
        (ner,), ner_source = await self.run("ner", [text])
        entities = ner["entities"]
        pairs = [(i, j) for i, a in enumerate(entities) for j, b in enumerate(entities)
                 if i != j and (a["type"], b["type"]) in CANDIDATE_TYPES
                 and not (a["type"] == b["type"] == "problem" and j < i)]
        relations, sources = [], [ner_source]
        rel_state = self.runtime.states.get("relations")
        if pairs and rel_state is not None and rel_state.status == "ready":
            items = [{"text": text, "head": _span(entities[i]), "tail": _span(entities[j])} for i, j in pairs]
            answers = []
            for start in range(0, len(items), self.settings.max_items):
                chunk, rel_source = await self.run("relations", items[start : start + self.settings.max_items])
                answers.extend(chunk)
            sources.append(rel_source)
            relations = [{"head": i, "tail": j, **answer} for (i, j), answer in zip(pairs, answers)
                         if answer["label"] != "none"]
        return {"entities": entities, "relations": relations, "adapters": sources}


def _span(entity: dict) -> dict:
    return {"start": entity["start"], "end": entity["end"]}


def _not_ready() -> APIError:
    return APIError(503, "task_not_ready", "this task has no ready adapter", {"Retry-After": "5"})


def _no_content(row, specials: int) -> bool:
    if row.kind is TaskKind.token:
        return not row.word_starts
    return row.kind is TaskKind.sequence and len(row.input_ids) <= specials


def _safe(exc: Exception) -> str:
    """Validation messages from our own encoders describe shapes, never the text itself."""
    message = str(exc)
    return message if len(message) < 200 else "invalid input"


def pair_task(runtime: Runtime, task: str) -> bool:
    state = runtime.states.get(task)
    return bool(state and state.resident and state.resident.spec.kind is TaskKind.pair)
