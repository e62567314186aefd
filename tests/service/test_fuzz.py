"""Property-based HTTP fuzzing of the service's OpenAPI spec (schemathesis, in-process ASGI app).

Every operation gets generated requests, valid and invalid (positive and negative modes), with an
admin token so the admin routes are exercised past the token check. Two checks on every response:

- ``not_a_server_error``: no 5xx;
- ``no_echo``: an error response (status >= 400) contains no string of the request longer than
  8 characters, apart from the service's own words (anything in the source of service/ and
  adapters/: task, label and field names, error codes) and version names.

A longer run (examples per operation and mode; the default keeps the test under a minute):
``BEDSIDE_FUZZ_EXAMPLES=500 .venv/bin/python -m pytest -q -s tests/service/test_fuzz.py -k fuzz_no``.
Results and the bug it found (regression test at the end): docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

EXAMPLES = int(os.environ.get("BEDSIDE_FUZZ_EXAMPLES", "30"))
ADMIN = {"Authorization": "Bearer admin-secret"}
MIN_ECHO = 9  # strings longer than 8 characters


def vocabulary() -> str:
    """The service's own words: the source of service/ and adapters/ (error codes and messages,
    task and label names). Hypothesis draws string literals from local modules, so generated
    requests hold these too, and an error answering one of them is not an echo."""
    root = Path(__file__).resolve().parents[2]
    return "\n".join(
        f.read_text(encoding="utf-8").lower()
        for package in ("service", "adapters")
        for f in sorted((root / package).rglob("*.py"))
    )


VOCABULARY = vocabulary()


def request_strings(case) -> set[str]:
    """Every string the request carries (body values and keys, path and query values)."""
    out: set[str] = set()

    def walk(node):
        if isinstance(node, str):
            out.add(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(key), walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    for part in (case.body, case.path_parameters, case.query):
        if part is not None and not isinstance(part, (bytes, bytearray)):
            walk(part)
    return {s for s in out if len(s) >= MIN_ECHO and s.lower() not in VOCABULARY and not re.fullmatch(r"v[0-9]+", s)}


def response_strings(text: str) -> list[str]:
    """The raw body, and every string in it once JSON-decoded (escapes undone)."""
    out = [text]
    try:
        data = json.loads(text)
    except ValueError:
        return out

    def walk(node):
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(key), walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return out


def no_echo(ctx, response, case):
    """An error body never quotes the request (RELIABILITY rows 2 and 31)."""
    if response.status_code < 400:
        return None
    seen = response_strings(response.text)
    echoed = [s for s in request_strings(case) if any(s in r for r in seen)]
    if echoed:
        raise AssertionError(f"{response.status_code} body echoes request text: {echoed[0][:40]!r}")
    return None


def fuzz_schema(app):
    from bedside.adapters.tasks import PRESETS

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @schema.hook
    def flatmap_body(context, body):
        # Besides the spec's own bodies (mostly refused: unknown task, empty text, texts and items
        # both or neither), bodies that name a served task with the input it takes and arbitrary
        # Unicode text, so the tokenizer and the model see fuzzed input too.
        if not (isinstance(body, dict) and isinstance(body.get("task"), str)):
            return st.just(body)
        return st.one_of(st.just(body), st.sampled_from(sorted(PRESETS)).flatmap(served_body))

    @schema.hook
    def flatmap_path_parameters(context, params):
        # Likewise for path tasks and versions: /readyz/{task}, activation of v1 (already active).
        if isinstance(params, dict) and isinstance(params.get("task"), str):
            known = {**params, "task": "mortality"}
            if "version" in params:
                known["version"] = "v1"
            return st.one_of(st.just(params), st.sampled_from(sorted(PRESETS)).map(lambda t: {**known, "task": t}))
        return st.just(params)

    return schema


TEXT = st.text(min_size=1, max_size=300).filter(str.strip)


@st.composite
def pair_item(draw):
    text = draw(TEXT)
    spans = [sorted(draw(st.lists(st.integers(0, len(text) + 2), min_size=2, max_size=2))) for _ in range(2)]
    head, tail = ({"start": a, "end": max(b, 1)} for a, b in spans)
    return {"text": text, "head": head, "tail": tail}


def served_body(task: str):
    if task == "relations":
        return st.lists(pair_item(), min_size=1, max_size=3).map(lambda items: {"task": task, "items": items})
    return st.lists(TEXT, min_size=1, max_size=4).map(lambda texts: {"task": task, "texts": texts})


def test_fuzz_no_server_error_and_no_echo(make_client):
    """Positive and negative examples for every operation of the spec; any failure is reported with
    the request that caused it (schemathesis' reproduction, which names the operation)."""
    from schemathesis.checks import not_a_server_error

    client, _ = make_client()
    schema = fuzz_schema(client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    spec = client.get("/openapi.json").json()
    for path in ("/predict", "/extract"):  # the raw-body routes declare their JSON body
        assert "application/json" in spec["paths"][path]["post"]["requestBody"]["content"], path
    calls: dict[str, dict[int, int]] = {}

    for operation in operations:
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode, hooks=schema.hooks))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call_and_validate(headers=ADMIN, checks=[not_a_server_error, no_echo])
                counts = calls.setdefault(operation.label, {})
                counts[response.status_code] = counts.get(response.status_code, 0) + 1

            try:
                run()
            except Unsatisfiable:  # no parameter or body to make invalid (GET /status)
                if mode is GenerationMode.POSITIVE:
                    raise
    print(f"\nfuzzed {len(operations)} operations, {sum(sum(c.values()) for c in calls.values())} requests")
    for label, counts in sorted(calls.items()):
        print(f"  {label}: {dict(sorted(counts.items()))}")
    assert len(operations) >= 8 and set(calls) == {op.label for op in operations}
    for label in ("POST /predict", "POST /extract"):
        assert calls[label].get(200, 0) > 0, f"{label} never got past validation: {calls[label]}"


def test_echo_check_catches_an_echo():
    from types import SimpleNamespace as NS

    note = "PHI-CANARY-0b2c patient note"
    case = NS(body={"task": "mortality", "texts": [note]}, path_parameters={}, query={})
    no_echo(None, NS(status_code=422, text='{"error": "invalid_request", "message": "texts.0: string type"}'), case)
    no_echo(None, NS(status_code=200, text=f'{{"results": [{{"text": "{note}"}}]}}'), case)  # 200 may quote
    for text in (f'{{"message": "bad {note}"}}', '{"message": "bad PHI-CANARY-0b2c patient \\u006eote"}'):
        with pytest.raises(AssertionError, match="echoes"):
            no_echo(None, NS(status_code=400, text=text), case)
    # the service's own words (task, label, error codes) are not an echo
    no_echo(
        None,
        NS(status_code=404, text='{"error": "not_found", "message": "unknown task length_of_stay"}'),
        NS(body={"task": "length_of_stay"}, path_parameters={}, query={}),
    )


def test_admin_routes_refuse_an_unknown_task_without_quoting_it(make_client):
    """What the 500-example run found: rollback/activation of an unknown task quoted its name."""
    from bedside.adapters.registry import Registry

    client, engine = make_client()
    name = "undefined_patient_smith"
    for url in (f"/admin/adapters/{name}/rollback", f"/admin/adapters/{name}/v1/activate"):
        r = client.post(url, headers=ADMIN)
        assert (r.status_code, r.json()["error"]) == (404, "unknown_task"), r.text
        assert name not in r.text
    entries = Registry(engine.runtime.registry.root).audit_entries()[-2:]
    assert [(e.action, e.task, e.outcome) for e in entries] == [
        ("rollback", None, "refused"),
        ("activate", None, "refused"),
    ]
    assert name not in json.dumps([e.model_dump(mode="json") for e in entries])
    r = client.post("/admin/adapters/mortality/v1/activate", headers=ADMIN)  # a known task still works
    assert r.status_code == 200, r.text
