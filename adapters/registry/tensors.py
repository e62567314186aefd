"""Safetensors checked by hand before any library parses them.

The format is ``u64 little-endian header length | JSON header | data``. A hostile
file can claim a huge header, 100k entries, overlapping or out-of-file offsets,
or shapes that do not match their byte ranges; every read here is bounded and
every claim is checked against the file size before a byte of data is touched.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidArtifact, TooLarge

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4}
FLOAT_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None}
_CHUNK_ELEMENTS = 1 << 22  # finite checks read at most ~16 MiB at a time


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute file offsets
    end: int


def read_header(path: Path, max_header_bytes: int, max_tensors: int) -> dict[str, TensorInfo]:
    """Parse and check a safetensors header; return its tensors by name."""
    name = path.name
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise InvalidArtifact(f"{name}: truncated safetensors file (no header length)")
        (n,) = struct.unpack("<Q", raw)
        if n > max_header_bytes:
            raise TooLarge(f"{name}: safetensors header of {n} bytes is over the {max_header_bytes}-byte cap")
        if n < 2 or 8 + n > size:
            raise InvalidArtifact(f"{name}: header length {n} does not fit the {size}-byte file (truncated?)")
        header = f.read(n)
    if len(header) != n:
        raise InvalidArtifact(f"{name}: truncated safetensors header")
    entries = _parse_json(name, header, max_tensors)
    entries.pop("__metadata__", None)
    data_start = 8 + n
    tensors = {key: _entry(name, key, value, data_start) for key, value in entries.items()}
    _check_layout(name, tensors, data_start, size)
    return tensors


def _parse_json(name: str, header: bytes, max_tensors: int) -> dict:
    objects = 0

    def bounded(pairs):
        # Called once per JSON object as it completes: every tensor entry is one, so the
        # parse stops after max_tensors of them instead of building 100k dicts first.
        nonlocal objects
        objects += 1
        if objects > max_tensors + 2:  # + __metadata__ + the top-level object
            raise TooLarge(f"{name}: more than {max_tensors} tensors (over the cap)")
        data = dict(pairs)
        if len(data) != len(pairs):
            raise InvalidArtifact(f"{name}: duplicate keys in the safetensors header")
        return data

    try:
        data = json.loads(header.decode("utf-8"), object_pairs_hook=bounded)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidArtifact(f"{name}: the safetensors header is not valid JSON (corrupt or bit-flipped)") from None
    if not isinstance(data, dict):
        raise InvalidArtifact(f"{name}: the safetensors header is not a JSON object")
    if "__metadata__" in data and not _is_str_map(data["__metadata__"]):
        raise InvalidArtifact(f"{name}: __metadata__ must map strings to strings")
    if len(data) - ("__metadata__" in data) > max_tensors:
        raise TooLarge(f"{name}: {len(data)} tensors is over the cap of {max_tensors}")
    return data


def _is_str_map(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _entry(name: str, key: str, value, data_start: int) -> TensorInfo:
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise InvalidArtifact(f"{name}: tensor {key_ref(key)} needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise InvalidArtifact(
            f"{name}: tensor {key_ref(key)} has dtype {dtype_ref(dtype)}; allowed: {sorted(DTYPE_SIZES)}"
        )
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_nonneg_int(d) for d in shape)):
        raise InvalidArtifact(f"{name}: tensor {key_ref(key)} has an invalid shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_nonneg_int(o) for o in offsets)):
        raise InvalidArtifact(f"{name}: tensor {key_ref(key)} has invalid data_offsets")
    begin, end = offsets
    if end < begin:
        raise InvalidArtifact(f"{name}: tensor {key_ref(key)} ends before it starts")
    if math.prod(shape) * DTYPE_SIZES[dtype] != end - begin:
        raise InvalidArtifact(f"{name}: tensor {key_ref(key)}: shape {shape} x {dtype} is not {end - begin} bytes")
    return TensorInfo(key, dtype, tuple(shape), data_start + begin, data_start + end)


def _nonneg_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 48


def _check_layout(name: str, tensors: dict[str, TensorInfo], data_start: int, size: int) -> None:
    """Byte ranges must tile the data section exactly: no gaps, overlaps or bytes past the end."""
    position = data_start
    for t in sorted(tensors.values(), key=lambda t: (t.start, t.end)):
        if t.start != position:
            raise InvalidArtifact(f"{name}: tensor {t.name!r} has bad offsets (gap or overlap in the data)")
        position = t.end
    if position != size:
        raise InvalidArtifact(
            f"{name}: the header describes {position - data_start} data bytes but the file has "
            f"{size - data_start} (truncated or padded)"
        )


def check_finite(path: Path, tensors: dict[str, TensorInfo]) -> None:
    """Every float weight finite; reads in bounded chunks through a memory map."""
    if not tensors or os.path.getsize(path) == 0:
        return
    data = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        for t in tensors.values():
            if t.dtype in FLOAT_DTYPES and t.end > t.start and not _finite(data, t):
                raise InvalidArtifact(f"{path.name}: tensor {t.name!r} has NaN or Inf values")
    finally:
        del data


def _finite(data: np.memmap, t: TensorInfo) -> bool:
    width = DTYPE_SIZES[t.dtype]
    step = _CHUNK_ELEMENTS * width
    for offset in range(t.start, t.end, step):
        chunk = np.asarray(data[offset : min(offset + step, t.end)])
        if t.dtype == "BF16":  # numpy has no bfloat16: widen the top 16 bits into float32
            values = (chunk.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            values = chunk.view(np.dtype(FLOAT_DTYPES[t.dtype]).newbyteorder("<"))
        if not np.isfinite(values).all():
            return False
    return True


def cross_check_with_library(path: Path, tensors: dict[str, TensorInfo]) -> None:
    """Let safetensors itself open the (already checked) file; it must agree on the names."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            names = set(f.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidArtifact(f"{path.name} is not a valid safetensors file: {exc}") from None
    if names != set(tensors):
        raise InvalidArtifact(f"{path.name}: the safetensors library reads different tensor names")


_PLAIN_KEY = re.compile(r"^[a-z0-9_.]{1,256}$")  # a module path as PEFT and torch write it


def key_ref(key: object) -> str:
    """How a message names a tensor (or dtype): as written when it looks like a module path, else by a
    hash (tensor names in an upload are the uploader's text, kept out of error bodies and the audit)."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return repr(key)
    return "(name sha256:" + hashlib.sha256(str(key).encode("utf-8", "replace")).hexdigest()[:12] + ")"


def dtype_ref(dtype: object) -> str:
    """A dtype code as written (``'U8'``) when it looks like one, else by a hash."""
    return repr(dtype) if isinstance(dtype, str) and re.fullmatch(r"[A-Z0-9]{1,8}", dtype) else key_ref(dtype)
