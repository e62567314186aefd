"""Reading a JSON request body into its model, and saying what is wrong without echoing it."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from .errors import APIError
from .guards import parse_json, require_json
from .schemas import ExtractRequest, PairItem, PredictRequest, SpanIn

M = TypeVar("M", bound=BaseModel)

# Request keys that may appear in error messages, and FastAPI's own parameter locations.
FIELDS = frozenset(name for model in (PredictRequest, ExtractRequest, PairItem, SpanIn) for name in model.model_fields)
FIELDS |= {"query", "path", "header", "activate", "task", "version", "percent"}
BOUNDS = ("gt", "ge", "lt", "le")  # a bound comes from the schema, never from the request


async def json_body(request: Request, model: type[M]) -> M:
    """The body as ``model``: 415 unless JSON, 400 unless strict UTF-8 JSON, 422 unless it fits."""
    require_json(request.headers.get("content-type"))
    data = parse_json(await request.body())
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise APIError(422, "invalid_request", describe(exc)) from None


def describe(exc: ValidationError | RequestValidationError) -> str:
    """Where the request is wrong and why, without echoing any value (nor an unknown key's name)."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) if isinstance(p, int) or p in FIELDS else "(unknown field)" for p in error["loc"])
        bound = next((f" {error['ctx'][k]}" for k in BOUNDS if k in error.get("ctx", {})), "")
        parts.append(f"{where or 'body'}: {error['type'].replace('_', ' ')}{bound}")
    return "; ".join(parts)


def openapi_body(model: type[BaseModel], examples: dict | None = None) -> dict:
    """The OpenAPI request body of a route that reads its raw body (so FastAPI cannot see the model):
    the model's JSON schema with its ``$defs`` inlined, since refs there would not resolve."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    content: dict = {"schema": inline(schema)}
    if examples:
        content["examples"] = examples
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def answers(model: type[BaseModel]) -> dict:
    """The documented 200 answer of a route that returns plain dicts (documented, not re-validated:
    the tests check real answers against the model)."""
    return {200: {"model": model, "description": model.__doc__ or "the answer"}}
