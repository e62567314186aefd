"""The adapter registry: versions per task, one active each, validated and audited.

``from adapters.registry import Registry`` is cheap (no torch/peft import):
listing, activation and rollback work in light processes; pushing imports the
validators, and the default smoke imports the model code, only when used.
"""

from .backend import StoreBackend
from .config import default_actor, default_store, resolve_store
from .errors import (
    BaseMismatch,
    Conflict,
    ForbiddenConfig,
    InvalidArtifact,
    InvalidRequest,
    NotFound,
    NotServable,
    RegistryError,
    SmokeFailed,
    StoreUnavailable,
    TooLarge,
    UnexpectedFile,
)
from .local import LocalStore
from .models import AuditEntry, ExpectedBase, VersionInfo
from .pointer import Rollout
from .registry import Registry

__all__ = [
    "AuditEntry",
    "BaseMismatch",
    "Conflict",
    "ExpectedBase",
    "ForbiddenConfig",
    "InvalidArtifact",
    "InvalidRequest",
    "LocalStore",
    "NotFound",
    "NotServable",
    "Registry",
    "RegistryError",
    "Rollout",
    "SmokeFailed",
    "StoreBackend",
    "StoreUnavailable",
    "TooLarge",
    "UnexpectedFile",
    "VersionInfo",
    "default_actor",
    "default_store",
    "resolve_store",
]
