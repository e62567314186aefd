"""Command-line flags generated from a pydantic settings model: one ``--flag`` per field.

The model stays the one place where a setting, its type, default and help live; a command
decorated with :func:`settings_flags` gets every field as an option and receives the flags
the user gave as ``overrides`` (unset flags are left out, so the model's defaults, recipes
and environment variables still apply).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])
NONE_WORDS = {"none", "null", "off"}  # how a flag sets an optional field to None


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without ``None``, whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(get_args(annotation))
    return annotation, False


def _describe(field: FieldInfo, kind: Any, nullable: bool) -> str:
    parts = [field.description or ""]
    if get_origin(kind) is Literal:
        parts.append("one of " + " | ".join(str(v) for v in get_args(kind)))
    elif get_origin(kind) is tuple:
        parts.append("comma-separated")
    if nullable and field.default is not None:
        parts.append("'none' turns it off")
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    default = extra.get("cli_default", field.default)  # e.g. "the recipe's": filled by a validator
    if isinstance(default, Enum):
        default = default.value
    elif isinstance(default, tuple):
        default = ",".join(map(str, default))
    if default not in (None, ""):
        parts.append(f"default: {default}")
    return "; ".join(p for p in parts if p)


def _option(name: str, field: FieldInfo) -> tuple[Any, Any]:
    """The flag's annotation and typer default for one field."""
    kind, nullable = _unwrap(field.annotation)
    help_text = _describe(field, kind, nullable)
    if kind is bool:
        return Optional[bool], typer.Option(
            None, f"{flag_name(name)}/--no-{name.replace('_', '-')}", help=help_text, show_default=False
        )
    if isinstance(kind, type) and issubclass(kind, Enum):
        cli_type: Any = kind
    elif kind in (int, float, Path) and not (nullable and field.default is not None):
        cli_type = kind
    else:  # Literal, tuples, optional numbers with a default: parsed below, validated by the model
        cli_type = str
    return Optional[cli_type], typer.Option(None, flag_name(name), help=help_text, show_default=False)


def _value(field: FieldInfo, raw: Any) -> Any:
    kind, nullable = _unwrap(field.annotation)
    if isinstance(raw, str):
        if nullable and raw.strip().lower() in NONE_WORDS:
            return None
        if get_origin(kind) is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def settings_flags(model: type[BaseModel], skip: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Give a typer command one option per field of ``model`` (minus ``skip``); the command's
    ``overrides: dict`` parameter receives ``{field: value}`` for the flags that were given."""
    fields = {name: info for name, info in model.model_fields.items() if name not in skip}

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != "overrides"]
        taken = {p.name for p in own}
        clash = taken & set(fields)
        if clash:
            raise TypeError(f"{command.__name__} declares settings fields itself: {sorted(clash)}")
        added = []
        for name, info in fields.items():
            annotation, default = _option(name, info)
            added.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            )

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in list(kwargs) if name in fields}
            overrides = {name: _value(fields[name], raw) for name, raw in given.items() if raw is not None}
            return command(**kwargs, overrides=overrides)

        wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
