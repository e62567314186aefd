"""Everything an artifact must pass before the registry stores it.

Pure functions over a local folder (the registry's staged copy, or the service's
unpacked upload): allow-listed regular files only, bounded sizes, hand-checked
safetensors, an allow-listed PEFT config, a consistent manifest, and shapes that
fit the served base. Nothing here loads weights into torch or touches the network.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ..artifact import (
    ARTIFACT_FILES,
    ENCODER_WEIGHTS,
    EXAMPLES,
    HEAD_WEIGHTS,
    MANIFEST,
    MODEL_CARD,
    PEFT_CONFIG,
    PEFT_WEIGHTS,
    ArtifactError,
    Manifest,
    Method,
    read_manifest,
)
from ..tasks import TaskSpec
from .errors import BaseMismatch, ForbiddenConfig, InvalidArtifact, TooLarge, UnexpectedFile
from .models import ExpectedBase
from .peft_schema import PeftSchema, parse_peft_config
from .shapes import check_adapter_tensors
from .tensors import FLOAT_DTYPES, TensorInfo, check_finite, cross_check_with_library, read_header

MiB = 1 << 20
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
PEFT_TYPES = {Method.lora: "LORA", Method.ia3: "IA3"}


@dataclass(frozen=True)
class Limits:
    """Caps on what one artifact may hold (sizes in bytes)."""

    max_weight_bytes: int = 256 * MiB  # per .safetensors file
    max_json_bytes: int = 1 * MiB  # per JSON file
    max_text_bytes: int = 1 * MiB  # the model card
    max_total_bytes: int = 768 * MiB
    max_header_bytes: int = 16 * MiB  # safetensors JSON header
    max_tensors: int = 10_000  # per safetensors file
    max_rank: int = 64
    max_examples: int = 100

    def cap(self, name: str) -> int:
        if name.endswith(".safetensors"):
            return self.max_weight_bytes
        return self.max_json_bytes if name.endswith(".json") else self.max_text_bytes


@dataclass
class CheckedArtifact:
    manifest: Manifest
    sizes: dict[str, int]
    peft_config: PeftSchema | None = None
    tensors: dict[str, dict[str, TensorInfo]] = field(default_factory=dict)


# -- the folder ------------------------------------------------------------------
def check_name(name: str) -> str:
    """Only bare, allow-listed file names: no separators, no '..', nothing absolute."""
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name in (".", "..")
        or os.path.isabs(name)
    ):
        raise UnexpectedFile(f"file {name_ref(name)} is not a plain file name (path tricks are refused)")
    if name not in ARTIFACT_FILES:
        hint = (
            " (archives are not accepted: push the unpacked artifact folder)"
            if name.lower().endswith(ARCHIVE_SUFFIXES)
            else ""
        )
        raise UnexpectedFile(f"unexpected file {name_ref(name)}{hint}; allowed: {', '.join(ARTIFACT_FILES)}")
    return name


def name_ref(name: object) -> str:
    """How a message names a file: its name when it is one of the artifact's, else only a hash of it
    (a file name is the uploader's text: it must not reach an error body or the audit log)."""
    if isinstance(name, str) and name in ARTIFACT_FILES:
        return repr(name)
    digest = hashlib.sha256(str(name).encode("utf-8", "replace")).hexdigest()[:12]
    return f"(name sha256:{digest})"


def check_file_stat(name: str, st: os.stat_result, limits: Limits) -> int:
    """Regular, singly linked, within its size cap."""
    if stat.S_ISLNK(st.st_mode):
        raise UnexpectedFile(f"{name} is a symbolic link; only regular files are accepted")
    if stat.S_ISDIR(st.st_mode):
        raise UnexpectedFile(f"{name} is a directory; artifacts are flat folders")
    if not stat.S_ISREG(st.st_mode):
        raise UnexpectedFile(f"{name} is not a regular file")
    if st.st_nlink > 1:
        raise UnexpectedFile(f"{name} is a hard link ({st.st_nlink} names); only regular files are accepted")
    if st.st_size > limits.cap(name):
        raise TooLarge(f"{name} is {st.st_size} bytes; the cap is {limits.cap(name)}")
    return st.st_size


def scan_dir(path: Path, limits: Limits) -> dict[str, int]:
    """Names and sizes of an artifact folder's files, refusing anything else (lstat only)."""
    path = Path(path)
    if not path.is_dir():
        if path.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise UnexpectedFile(f"{path.name}: archives are not accepted; push the unpacked artifact folder")
        raise InvalidArtifact(f"{path} is not an artifact folder")
    sizes: dict[str, int] = {}
    with os.scandir(path) as entries:
        for entry in entries:  # the first bad name stops the scan: a huge folder costs nothing
            name = check_name(entry.name)
            sizes[name] = check_file_stat(name, entry.stat(follow_symlinks=False), limits)
    total = sum(sizes.values())
    if total > limits.max_total_bytes:
        raise TooLarge(f"the artifact is {total} bytes; the cap is {limits.max_total_bytes}")
    return sizes


# -- the contents ------------------------------------------------------------------
class _PairInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    head: Any
    tail: Any


class SmokeExample(BaseModel):
    """One ``examples.json`` item: an input and, optionally, the answer it must give."""

    model_config = ConfigDict(extra="forbid")
    input: str | _PairInput
    expected: Any = None


_EXAMPLES = TypeAdapter(list[SmokeExample])


def read_examples(path: Path, limits: Limits = Limits()) -> list[SmokeExample]:
    file = Path(path) / EXAMPLES
    if not file.is_file():
        return []
    try:
        items = _EXAMPLES.validate_json(file.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidArtifact(f"{EXAMPLES}: {first['msg']} at {list(first['loc'])}") from None
    if len(items) > limits.max_examples:
        raise TooLarge(f"{EXAMPLES} has {len(items)} examples; the cap is {limits.max_examples}")
    return items


def check_base(manifest: Manifest, expected: ExpectedBase | None) -> None:
    if expected is None:
        return
    if manifest.base.fingerprint != expected.fingerprint:
        raise BaseMismatch(
            f"trained on base {manifest.base.name!r} ({manifest.base.fingerprint[:19]}…), but the served base "
            f"{expected.name!r} is {expected.fingerprint[:19]}…"
        )
    if manifest.base.hidden_size != expected.hidden_size:
        raise BaseMismatch(f"hidden size {manifest.base.hidden_size} != the served base's {expected.hidden_size}")


def check_head(tensors: dict[str, TensorInfo], manifest: Manifest, hidden_size: int) -> None:
    if set(tensors) != {"classifier.weight", "classifier.bias"}:
        raise InvalidArtifact(f"{HEAD_WEIGHTS} must hold exactly classifier.weight and classifier.bias")
    if any(t.dtype not in FLOAT_DTYPES for t in tensors.values()):
        raise InvalidArtifact(f"{HEAD_WEIGHTS}: head weights must be floating point (F16, BF16, F32, F64)")
    labels = manifest.task.num_labels
    rows = tensors["classifier.weight"].shape[0] if tensors["classifier.weight"].shape else 0
    if rows != labels or tensors["classifier.bias"].shape != (rows,):
        raise InvalidArtifact(
            f"label count mismatch: task {manifest.task.name!r} lists {labels} labels but the head has {rows} outputs"
        )
    from ..kinds import strategy  # the head's input width (torch is imported only now)

    width = strategy(manifest.task.kind).head.input_factor * hidden_size
    if tensors["classifier.weight"].shape != (rows, width):
        raise BaseMismatch(f"the head takes {tensors['classifier.weight'].shape[1:]} inputs, the base gives {width}")


def check_task_spec(got: TaskSpec, expected: TaskSpec | None) -> None:
    """The task an artifact was trained for must be the registry task, kind and labels alike."""
    if expected is None:
        return
    for what in ("name", "kind", "labels"):
        if getattr(got, what) != getattr(expected, what):
            raise InvalidArtifact(
                f"the artifact is a {got.kind.value} adapter for {got.name!r} with labels {list(got.labels)}; "
                f"task {expected.name!r} is {expected.kind.value} with labels {list(expected.labels)}"
            )


def required_files(method: Method) -> tuple[set[str], set[str]]:
    """(must have, must not have) for a training method."""
    if method in PEFT_TYPES:
        return {MANIFEST, HEAD_WEIGHTS, PEFT_CONFIG, PEFT_WEIGHTS}, {ENCODER_WEIGHTS}
    if method is Method.full:
        return {MANIFEST, HEAD_WEIGHTS, ENCODER_WEIGHTS}, {PEFT_CONFIG, PEFT_WEIGHTS}
    raise ForbiddenConfig(f"{method.value} adapters are not stored: only LoRA, IA3 and full fine-tuning")


def validate_artifact(
    path: str | Path,
    limits: Limits = Limits(),
    expected_base: ExpectedBase | None = None,
    base_encoder=None,
    task: str | None = None,
) -> CheckedArtifact:
    """Run every check on a local artifact folder; raise a RegistryError on the first failure."""
    path = Path(path)
    expected_base = ExpectedBase(*expected_base) if expected_base is not None else None
    sizes = scan_dir(path, limits)
    if MANIFEST not in sizes:
        raise InvalidArtifact(f"missing {MANIFEST}")
    try:
        manifest = read_manifest(path)
    except ArtifactError as exc:
        raise InvalidArtifact(str(exc).replace(str(path) + "/", "")) from None
    if task is not None and manifest.task.name != task:
        raise InvalidArtifact(f"the artifact is for task {manifest.task.name!r}, not {task!r}")
    check_base(manifest, expected_base)
    need, refuse = required_files(manifest.method)
    if missing := sorted(need - set(sizes)):
        raise InvalidArtifact(f"a {manifest.method.value} artifact needs {', '.join(missing)}")
    if extra := sorted(refuse & set(sizes)):
        raise UnexpectedFile(f"a {manifest.method.value} artifact must not hold {', '.join(extra)}")
    checked = CheckedArtifact(manifest=manifest, sizes=sizes)
    for name in sorted(n for n in sizes if n.endswith(".safetensors")):
        checked.tensors[name] = read_header(path / name, limits.max_header_bytes, limits.max_tensors)
        check_finite(path / name, checked.tensors[name])
        cross_check_with_library(path / name, checked.tensors[name])
    hidden = expected_base.hidden_size if expected_base else manifest.base.hidden_size
    check_head(checked.tensors[HEAD_WEIGHTS], manifest, hidden)
    if manifest.method in PEFT_TYPES:
        checked.peft_config = _check_peft(path, checked, expected_base, base_encoder, limits)
    read_examples(path, limits)
    if MODEL_CARD in sizes:
        try:
            (path / MODEL_CARD).read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArtifact(f"{MODEL_CARD} is not UTF-8 text") from None
    return checked


def served_base_names(manifest: Manifest, expected_base: ExpectedBase | None, base_encoder=None) -> tuple[str, ...]:
    """Names ``base_model_name_or_path`` may carry: the served base as named here or where it was loaded from."""
    names = [expected_base.name if expected_base else manifest.base.name]
    if expected_base and manifest.base.fingerprint == expected_base.fingerprint:
        names.append(manifest.base.name)  # the same weights, named where they were trained
    loaded_from = getattr(getattr(base_encoder, "config", None), "_name_or_path", "")
    return tuple(n for n in names + [loaded_from] if n)


def _check_peft(path: Path, checked: CheckedArtifact, expected_base, base_encoder, limits: Limits) -> PeftSchema:
    manifest = checked.manifest
    config = parse_peft_config(
        (path / PEFT_CONFIG).read_bytes(), limits.max_rank, served_base_names(manifest, expected_base, base_encoder)
    )
    if config.peft_type != PEFT_TYPES[manifest.method]:
        raise InvalidArtifact(f"manifest method {manifest.method.value} but adapter_config.json is {config.peft_type}")
    check_adapter_tensors(config, checked.tensors[PEFT_WEIGHTS], base_encoder, limits.max_rank)
    return config
