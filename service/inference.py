"""From a validated request to an answer: limits, lease, tokenise (off the event loop), batch, decode.

Whole notes are answered: each task kind turns a note into rows (windows for token tasks, the
adapter's long-input strategy for sequence tasks, a local window per pair), all of a request's
rows go to the batcher as one job, and the answer says how each input was read. Limits are
per request (characters first, cheaply, on the event loop; then words and tokens while
tokenising in a worker thread): 413 above them, 422 for text that is mostly unknown tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from starlette.requests import ClientDisconnect, Request

from bedside.adapters.encoding import TooLongError
from bedside.adapters.kinds import EncodedItem, KindStrategy, note_candidates, pair_items, strategy
from bedside.adapters.limits import Budget, EntitiesTooFar, InputRefused
from bedside.adapters.predict import Predictor

from . import metrics
from .batcher import Batcher, Job, QueueFull
from .errors import APIError, busy
from .residents import Resident
from .runtime import Runtime
from .settings import SERVICE_VERSION, ServiceSettings
from .shadow import Shadows

INLINE_CHARS = 2048  # a request this small is tokenised on the event loop (faster than a hand-off)
GAP_WAIT_S = 0.5  # at most this long per piece does counting a long text wait for a batching pass
SLICE_S = 0.005  # counting runs this long beside a forward before it waits for the pass to end


class Engine:
    """Everything a request handler needs, created once per worker process."""

    def __init__(self, settings: ServiceSettings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime(settings)
        self.limits = settings.input_limits()
        # One thread: long notes are tokenised one at a time, beside (never inside) the event loop.
        self.tokenizing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bedside-tokenize")
        self._slice_start = 0.0  # when the tokenizing thread last waited for a gap
        self.batcher = Batcher(
            self.runtime.backend.run,
            self.runtime.lock,
            settings.max_batch_rows,
            settings.max_wait_ms,
            settings.max_queue_rows,
            settings.max_padding,
            settings.max_queue_wait_s,
            settings.shadow_queue_rows,
        )
        self.shadows = Shadows(self.batcher, self.runtime.cache, self.predictor, settings.shadow_timeout_s)

    def start(self, poll: bool = True) -> None:
        self.runtime.start(poll=poll)

    def close(self) -> None:
        self.runtime.stop()
        self.batcher.close()
        self.tokenizing.shutdown(wait=False, cancel_futures=True)

    def predictor(self, slot: str) -> Predictor:
        return Predictor(self.runtime.backend, slot, self.settings.max_length, self.limits)

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

    def check_size(self, items: list[Any]) -> int:
        """Characters, cheaply, before anything is tokenised: 413 over a text's or the request's cap."""
        sizes = [len(item["text"] if isinstance(item, dict) else item) for item in items]
        if any(n > self.settings.max_text_chars for n in sizes):
            raise APIError(413, "too_large", f"a text is over {self.settings.max_text_chars} characters")
        if sum(sizes) > self.settings.max_request_chars:
            raise APIError(
                413, "too_large", f"the request's texts are over {self.settings.max_request_chars} characters together"
            )
        return sum(sizes)

    async def run(
        self, task: str, items: list[Any], request: Request | None = None, internal: bool = False
    ) -> tuple[list[dict], dict]:
        """Predict ``items`` with the task's active version; return results and provenance.
        ``internal``: items made by bedside (extract's pairs), bounded by their own limit."""
        self.check_task(task)
        if not internal and len(items) > self.settings.max_items:
            raise APIError(413, "too_many_items", f"at most {self.settings.max_items} items per request")
        chars = self.check_size(items) if not internal else INLINE_CHARS + 1  # extract's pairs share its note
        with self.runtime.lease(task, _request_key(request)) as route:
            resident = route.serving
            if resident is None or resident.info is None:  # a leased version is a stored one
                raise _not_ready()
            if not internal and request is not None:  # what the request's metrics are labelled by
                request.scope.setdefault("state", {})["bedside_route"] = (resident.info.version, route.role)
            predictor = self.predictor(resident.slot)
            if not internal and not self.batcher.admits():  # refused before any tokenising
                raise busy(retry_s=self.batcher.retry_after())
            t0 = time.perf_counter()
            encoded = await self._encode(predictor, items, internal, chars)
            metrics.TOKENIZE_SECONDS.labels(task).observe(time.perf_counter() - t0)
            rows = [row for item in encoded if item is not None for row in item.rows]
            job = self._submit(rows, resident.slot, admitted=internal) if rows else None
            shadow = None
            if route.shadow is not None and job is not None:  # queued behind the live job, never ahead
                shadow = self.shadows.start(
                    task, route, predictor, encoded, lambda p: self._encode(p, items, internal, chars)
                )
            try:
                logits = await self._wait(job, request) if job is not None else []
                results = self._decode(predictor, encoded, logits)
            except BaseException:
                if shadow is not None:
                    shadow.cancel()
                raise
            if shadow is not None:
                shadow.answered(results)
            version = resident.info.version
            for result in results:
                for score in predictor.kind.answer_scores(result):
                    metrics.ANSWER_SCORE.labels(task, version).observe(score)
            return results, self.provenance(resident)

    async def _encode(self, predictor: Predictor, items: list[Any], internal: bool, chars: int):
        if chars <= INLINE_CHARS:
            return _encode_all(predictor, items, internal)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.tokenizing, _encode_all, predictor, items, internal, self._yield)

    def _yield(self) -> None:
        """Between pieces of counting a text that may be refused: running forwards (admitted work)
        first, so a flood of over-long texts costs the answers in progress little."""
        if time.perf_counter() - self._slice_start < SLICE_S:
            return
        self.batcher.wait_for_gap(GAP_WAIT_S)
        self._slice_start = time.perf_counter()

    @staticmethod
    def _decode(predictor: Predictor, encoded: list[EncodedItem | None], logits) -> list[dict]:
        results: list[dict] = []
        at = 0
        for item in encoded:
            if item is None:  # an extract pair too far apart for one row: not a candidate
                results.append({"label": "none", "skipped": "entities_too_far"})
                continue
            results.append(predictor.decode(item, logits[at : at + item.windows]))
            at += item.windows
        return results

    def _submit(self, rows, slot: str, admitted: bool = False):
        try:
            return self.batcher.submit(rows, slot, admitted=admitted)
        except QueueFull:
            raise busy(retry_s=self.batcher.retry_after(len(rows))) from None

    async def _wait(self, job: Job, request: Request | None):
        """The job's logits from the batcher: 504 after the timeout, and the rows withdrawn when
        the client goes away (a full or slow queue was 429 at submit)."""
        waiting = asyncio.wrap_future(job.future)
        gone = asyncio.ensure_future(_disconnected(request)) if request is not None else None
        try:
            done, _ = await asyncio.wait(
                [waiting, *([gone] if gone else [])],
                timeout=self.settings.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if waiting in done:
                return waiting.result()
            job.cancel()
            if gone is not None and gone in done:
                raise ClientDisconnect()
            raise APIError(504, "timeout", "the request took too long")
        except asyncio.CancelledError:
            job.cancel()  # the handler itself was cancelled (the server is going away)
            raise
        except (APIError, ClientDisconnect):
            raise
        except Exception:
            raise APIError(500, "inference_failed", "the model failed on this batch; retry with fewer items") from None
        finally:
            if gone is not None:
                gone.cancel()

    async def extract(self, text: str, request: Request | None = None) -> dict:
        """NER over the whole note, then relations over the i2b2 candidate pairs of the entities
        found (within a sentence, or within ``pair_distance_chars``), each read in its sentence(s)."""
        (ner,), ner_source = await self.run("ner", [text], request)
        entities = ner["entities"]
        rel_state = self.runtime.states.get("relations")
        ready = rel_state is not None and rel_state.status == "ready" and rel_state.resident is not None
        room = self.predictor(rel_state.resident.slot).encoder.room if ready else None  # type: ignore[union-attr]
        pairs, far = self.candidates(text, entities, room)
        relations, sources = [], [ner_source]
        if pairs and ready:
            items = pair_items(text, entities, pairs)  # each in its sentence(s)
            answers, rel_source = await self.run("relations", items, request, internal=True)
            sources.append(rel_source)
            relations = [
                {"head": i, "tail": j, **answer} for (i, j), answer in zip(pairs, answers) if answer["label"] != "none"
            ]
            far += sum(1 for answer in answers if answer.get("skipped"))
        how = {"windows": ner["windows"], "strategy": ner["strategy"], "pairs": len(pairs)}
        if ready:
            how["pairs_too_far_apart"] = far
        return {"entities": entities, "relations": relations, "adapters": sources, "note": how}

    def candidates(self, text: str, entities: list[dict], room: int | None = None) -> tuple[list[tuple[int, int]], int]:
        """The note's candidate pairs, and how many more were too far apart (for a row of ``room``
        tokens, or over ``pair_max_words``); 413 when the candidates are over ``max_pairs``."""
        pairs, far = note_candidates(text, entities, self.limits, room)
        if len(pairs) > self.limits.max_pairs:
            raise APIError(
                413,
                "too_large",
                f"the note has {len(pairs)} candidate entity pairs within reach of each other; "
                f"the limit is {self.limits.max_pairs}",
            )
        return pairs, far


def _encode_all(
    predictor: Predictor, items: list[Any], internal: bool = False, pause: Callable[[], None] | None = None
) -> list[EncodedItem | None]:
    """Encode a request's items with one budget; limits and malformed items become API errors.
    ``internal`` (extract's candidate pairs): a pair too far apart for one row is None, not an error.
    ``pause``: called between pieces of counting a text that may be refused."""
    # extract's pairs share the note the NER call already counted; max_pairs bounds them
    budget = Budget(replace(predictor.limits, max_tokens=2**62, max_words=2**62)) if internal else predictor.budget()
    budget.pause = pause
    try:
        encoded = [_encode_one(predictor, item, budget, internal) for item in items]
    except InputRefused as exc:
        raise APIError(exc.status, exc.code, exc.message) from None
    except TooLongError as exc:
        raise APIError(413, "too_large", f"an input has {exc.n_tokens} tokens; the limit is {exc.max_length}") from None
    except ValueError as exc:
        raise APIError(422, "invalid_input", _safe(exc)) from None
    if any(item is not None and predictor.is_empty(item) for item in encoded):  # e.g. only control characters
        raise APIError(422, "invalid_input", "an input has no text once tokenised")
    return encoded


def _encode_one(predictor: Predictor, item: Any, budget, internal: bool) -> EncodedItem | None:
    try:
        return predictor.encode(item, budget)
    except EntitiesTooFar:
        if internal:
            return None
        raise


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone: after its body, an ASGI server's ``receive`` waits for the
    disconnect. Anything else from ``receive`` (a caller outside that contract) ends the watch."""
    message = await request.receive()
    if message["type"] != "http.disconnect":
        await asyncio.Event().wait()  # never set: cancelled when the answer is ready


def _request_key(request: Request | None) -> str | None:
    """The client's request id (``X-Request-ID``): a canary's split is stable per id."""
    if request is None:
        return None
    return request.headers.get("x-request-id") or None


def _not_ready() -> APIError:
    return APIError(503, "task_not_ready", "this task has no ready adapter", {"Retry-After": "5"})


def _safe(exc: Exception) -> str:
    """Validation messages from our own encoders describe shapes, never the text itself."""
    message = str(exc)
    return message if len(message) < 200 else "invalid input"
