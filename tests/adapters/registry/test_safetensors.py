"""Hostile and broken safetensors files (RELIABILITY rows 20 and 21)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bedside.adapters.registry import ForbiddenConfig, InvalidArtifact, TooLarge
from bedside.adapters.registry.tensors import check_finite, read_header
from bedside.adapters.registry.validate import Limits
from tests.helpers import edit_json, write_safetensors

HEADER_CAP, TENSOR_CAP = 16 << 20, 10_000


def header_of(path):
    return read_header(path, HEADER_CAP, TENSOR_CAP)


def refused_and_still_serving(registry, src, error, match):
    with pytest.raises(error, match=match):
        registry.push(src)
    assert [(v.version, v.active) for v in registry.list()] == [("v1", True)]
    assert registry.verify() == []


@pytest.fixture()
def serving(registry, artifact):
    registry.push(artifact(), activate=True)
    return registry


# -- row 20: caps, in bounded time ----------------------------------------------------------------------
def test_r20_rank_above_the_cap_is_refused(serving, artifact, registry):
    src = artifact()
    edit_json(src / "adapter_config.json", r=128)
    refused_and_still_serving(registry, src, ForbiddenConfig, "rank 128 is above the cap of 64")


def test_r20_rank_cap_is_configurable_and_checked_on_tensors(artifact, served, tmp_path):
    from bedside.adapters.registry import Registry

    strict = Registry(tmp_path / "strict", backbone=served, limits=Limits(max_rank=2))
    with pytest.raises(ForbiddenConfig, match="above the cap of 2"):
        strict.push(artifact())
    src = artifact()
    edit_json(src / "adapter_config.json", r=2)  # the config lies about the tensors' rank 4
    with pytest.raises(ForbiddenConfig, match="has rank 4; the cap is 2"):
        strict.push(src)


def test_r20_oversized_tensor_file_is_refused(artifact, served, tmp_path):
    from bedside.adapters.registry import Registry

    small = Registry(tmp_path / "small", backbone=served, limits=Limits(max_weight_bytes=4096))
    with pytest.raises(TooLarge, match="adapter_model.safetensors is 7680 bytes") as err:
        small.push(artifact())
    assert err.value.http_status == 413


def test_r20_header_with_100k_entries_is_refused_quickly(tmp_path, serving, artifact, registry):
    n = 100_000
    header = {f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(n)}
    bomb = tmp_path / "bomb.safetensors"
    write_safetensors(bomb, header, b"\0" * (4 * n))
    start = time.perf_counter()
    with pytest.raises(TooLarge, match="more than 10000 tensors"):
        header_of(bomb)
    src = artifact()
    (src / "adapter_model.safetensors").write_bytes(bomb.read_bytes())
    refused_and_still_serving(registry, src, TooLarge, "more than 10000 tensors")
    assert time.perf_counter() - start < 5.0  # well under 1 s alone; room for a busy machine


def test_r20_oversized_header_length_is_refused_before_reading(tmp_path):
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    start = time.perf_counter()
    with pytest.raises(TooLarge, match="over the 16777216-byte cap"):
        header_of(huge)
    write_safetensors(huge, {}, header_length=(16 << 20) - 1)  # under the cap but past the end of the file
    with pytest.raises(InvalidArtifact, match="does not fit"):
        header_of(huge)
    assert time.perf_counter() - start < 5.0  # well under 1 s alone; room for a busy machine


# -- row 21: corrupt files ----------------------------------------------------------------------------------
def test_r21_truncated_file_is_refused(serving, artifact, registry):
    src = artifact()
    weights = src / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    refused_and_still_serving(registry, src, InvalidArtifact, "truncated")
    weights.write_bytes(b"\x05\0\0")
    with pytest.raises(InvalidArtifact, match="no header length"):
        header_of(weights)


def test_r21_bit_flips_are_refused(serving, artifact, registry):
    src = artifact()
    weights = src / "adapter_model.safetensors"
    good = bytearray(weights.read_bytes())
    flipped = bytearray(good)
    flipped[8] ^= 0x80  # the header's opening brace is no longer JSON (nor UTF-8)
    weights.write_bytes(bytes(flipped))
    refused_and_still_serving(registry, src, InvalidArtifact, "not valid JSON")
    flipped = bytearray(good)
    flipped[0] ^= 0x01  # the header length is off by one
    weights.write_bytes(bytes(flipped))
    refused_and_still_serving(registry, src, InvalidArtifact, "safetensors")


@pytest.mark.parametrize(
    "offsets, match",
    [
        ([[0, 8], [4, 12]], "bad offsets"),  # overlapping bytes
        ([[0, 8], [12, 20]], "bad offsets"),  # a gap
        ([[8, 16], [0, 8]], "truncated or padded"),  # in any order, but the file holds more than described
        ([[0, 8], [24, 32]], "bad offsets"),  # past the end of the file
    ],
)
def test_r21_bad_offsets_are_refused(tmp_path, offsets, match):
    header = {f"t{i}": {"dtype": "F32", "shape": [2], "data_offsets": o} for i, o in enumerate(offsets)}
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, header, b"\0" * 24)
    with pytest.raises(InvalidArtifact, match=match):
        header_of(path)


def test_r21_shape_and_dtype_must_match_the_bytes(tmp_path):
    path = tmp_path / "x.safetensors"
    write_safetensors(path, {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8)
    with pytest.raises(InvalidArtifact, match="is not 8 bytes"):
        header_of(path)
    write_safetensors(path, {"w": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}, b"\0" * 8)
    with pytest.raises(InvalidArtifact, match="dtype 'U8'"):
        header_of(path)
    write_safetensors(
        path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"format": 1}}, b"\0" * 8
    )
    with pytest.raises(InvalidArtifact, match="__metadata__"):
        header_of(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_r21_non_finite_weights_are_refused(serving, artifact, registry, value):
    src = artifact()
    weights = src / "adapter_model.safetensors"
    state = load_file(weights)
    key = sorted(state)[3]
    state[key][0, 0] = value
    save_file(state, weights)
    refused_and_still_serving(registry, src, InvalidArtifact, "NaN or Inf")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_r21_non_finite_check_covers_half_precision(tmp_path, dtype):
    path = tmp_path / "w.safetensors"
    good = torch.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    save_file({"w": good}, path)
    check_finite(path, header_of(path))
    bad = good.clone()
    bad[2, 3] = float("inf")
    save_file({"w": bad, "ok": good}, path)
    with pytest.raises(InvalidArtifact, match="'w' has NaN or Inf"):
        check_finite(path, header_of(path))


def test_finite_check_reads_in_chunks(tmp_path, monkeypatch):
    from bedside.adapters.registry import tensors

    monkeypatch.setattr(tensors, "_CHUNK_ELEMENTS", 5)
    values = np.arange(23, dtype=np.float32)
    values[21] = np.nan
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.from_numpy(values)}, path)
    with pytest.raises(InvalidArtifact, match="NaN or Inf"):
        check_finite(path, header_of(path))
