"""From a validated request to an answer: lease, tokenise, batch, decode, provenance."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bedside.adapters.encoding import TooLongError
from bedside.adapters.kinds import PAIR, KindStrategy, strategy
from bedside.adapters.predict import Predictor

from . import metrics
from .batcher import Batcher, QueueFull
from .errors import APIError, busy
from .residents import Resident
from .runtime import Runtime
from .settings import SERVICE_VERSION, ServiceSettings


class Engine:
    """Everything a request handler needs, created once per worker process."""

    def __init__(self, settings: ServiceSettings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime(settings)
        self.batcher = Batcher(
            self.runtime.backend.run,
            self.runtime.lock,
            settings.max_batch_rows,
            settings.max_wait_ms,
            settings.max_queue_rows,
            settings.max_padding,
        )

    def start(self, poll: bool = True) -> None:
        self.runtime.start(poll=poll)

    def close(self) -> None:
        self.runtime.stop()
        self.batcher.close()

    def provenance(self, resident: Resident) -> dict[str, str]:
        info = resident.info
        assert info is not None  # a leased version is a stored one
        return {
            "task": info.task,
            "version": info.version,
            "sha256": info.sha256,
            "method": info.method,
            "base_fingerprint": self.runtime.backbone.fingerprint,
            "service_version": SERVICE_VERSION,
            "backend": self.runtime.backend.label,
        }

    def check_task(self, task: str) -> None:
        if task not in self.runtime.states:  # an allow-list: the name never reaches the filesystem
            raise APIError(404, "unknown_task", "unknown task")

    def check_ready(self, task: str) -> KindStrategy:
        """404 for an unknown task, 503 for one without a loaded adapter (before its input shape is
        known); else the task kind's strategy (what the request must carry)."""
        self.check_task(task)
        state = self.runtime.states[task]
        if state.status != "ready" or state.resident is None:
            raise _not_ready()
        return strategy(state.resident.spec.kind)

    def predictor(self, resident: Resident) -> Predictor:
        """A predictor for one request, with the service's limits as arguments."""
        return Predictor(
            self.runtime.backend, resident.slot, truncate=self.settings.truncate, max_length=self.settings.max_length
        )

    async def run(self, task: str, items: list[Any]) -> tuple[list[dict], dict]:
        """Predict ``items`` with the task's active version; return results and provenance."""
        self.check_task(task)
        if len(items) > self.settings.max_items:
            raise APIError(413, "too_many_items", f"at most {self.settings.max_items} items per request")
        with self.runtime.lease(task) as resident:
            if resident is None:
                raise _not_ready()
            predictor = self.predictor(resident)
            t0 = time.perf_counter()
            try:
                encoded = [predictor.encode(item) for item in items]
            except TooLongError as exc:
                raise APIError(
                    422, "too_long", f"an input has {exc.n_tokens} tokens; the limit is {exc.max_length}"
                ) from None
            except ValueError as exc:
                raise APIError(422, "invalid_input", _safe(exc)) from None
            if any(predictor.is_empty(row) for row, _ in encoded):  # e.g. only control characters
                raise APIError(422, "invalid_input", "an input has no text once tokenised")
            metrics.TOKENIZE_SECONDS.labels(task).observe(time.perf_counter() - t0)
            try:
                job = self.batcher.submit([row for row, _ in encoded], resident.slot)
            except QueueFull:
                raise busy() from None
            try:
                logits = await asyncio.wait_for(asyncio.wrap_future(job.future), self.settings.request_timeout_s)
            except TimeoutError:
                job.cancel()
                raise APIError(504, "timeout", "the request took too long") from None
            except asyncio.CancelledError:
                job.cancel()  # the client went away: free the slot
                raise
            except Exception:
                raise APIError(
                    500, "inference_failed", "the model failed on this batch; retry with fewer items"
                ) from None
            results = [predictor.decode(row, lg, ctx) for (row, ctx), lg in zip(encoded, logits)]
            return results, self.provenance(resident)

    async def extract(self, text: str) -> dict:
        """NER, then relations over every i2b2 candidate pair of the entities found."""
        (ner,), ner_source = await self.run("ner", [text])
        entities = ner["entities"]
        pairs = sorted(PAIR.candidate_pairs([e["type"] for e in entities]))
        relations, sources = [], [ner_source]
        rel_state = self.runtime.states.get("relations")
        if pairs and rel_state is not None and rel_state.status == "ready":
            items = [{"text": text, "head": _span(entities[i]), "tail": _span(entities[j])} for i, j in pairs]
            answers = []
            for start in range(0, len(items), self.settings.max_items):
                chunk, rel_source = await self.run("relations", items[start : start + self.settings.max_items])
                answers.extend(chunk)
            sources.append(rel_source)
            relations = [
                {"head": i, "tail": j, **answer} for (i, j), answer in zip(pairs, answers) if answer["label"] != "none"
            ]
        return {"entities": entities, "relations": relations, "adapters": sources}


def _span(entity: dict) -> dict:
    return {"start": entity["start"], "end": entity["end"]}


def _not_ready() -> APIError:
    return APIError(503, "task_not_ready", "this task has no ready adapter", {"Retry-After": "5"})


def _safe(exc: Exception) -> str:
    """Validation messages from our own encoders describe shapes, never the text itself."""
    message = str(exc)
    return message if len(message) < 200 else "invalid input"
