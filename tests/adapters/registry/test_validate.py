"""What the validator refuses before anything is stored (RELIABILITY rows 15-18, 22)."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from bedside.adapters.registry import BaseMismatch, ForbiddenConfig, InvalidArtifact, Registry, TooLarge, UnexpectedFile
from bedside.adapters.registry.validate import Limits, check_name, scan_dir, validate_artifact
from tests.helpers import edit_json


def assert_nothing_stored(registry: Registry) -> None:
    assert registry.list() == []
    staging = registry.root / ".staging"
    assert not staging.exists() or [p.name for p in staging.iterdir()] == [".lock"]


def test_a_built_artifact_passes(artifact, served):
    for task in ("mortality", "length_of_stay", "ner", "relations"):
        checked = validate_artifact(
            artifact(task),
            expected_base=(served.name, served.fingerprint, served.hidden_size),
            base_encoder=served.encoder,
        )
        assert checked.manifest.task.name == task and checked.peft_config.r == 4


# -- row 15: path tricks and archives --------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["../manifest.json", "/etc/passwd", "..", ".", "a/b", "sub\\manifest.json", "", "manifest.json/../../x"]
)
def test_r15_names_that_could_escape_are_refused(name):
    with pytest.raises(UnexpectedFile, match="path tricks"):
        check_name(name)


def test_r15_symlink_is_refused(artifact, registry, tmp_path):
    src = artifact()
    outside = tmp_path / "secret.md"
    outside.write_text("not part of the artifact")
    (src / "README.md").unlink()
    (src / "README.md").symlink_to(outside)
    with pytest.raises(UnexpectedFile, match="symbolic link"):
        registry.push(src)
    assert_nothing_stored(registry)


def test_r15_hardlink_is_refused(artifact, registry, tmp_path):
    src = artifact()
    os.link(src / "adapter_model.safetensors", tmp_path / "elsewhere.safetensors")
    with pytest.raises(UnexpectedFile, match="hard link"):
        registry.push(src)
    assert_nothing_stored(registry)


def test_r15_subdirectory_and_fifo_are_refused(artifact, registry):
    src = artifact()
    (src / "README.md").unlink()
    (src / "README.md").mkdir()
    with pytest.raises(UnexpectedFile, match="directory"):
        registry.push(src)
    (src / "README.md").rmdir()
    os.mkfifo(src / "README.md")  # opening a FIFO would block: refused from lstat alone
    with pytest.raises(UnexpectedFile, match="not a regular file"):
        registry.push(src)
    assert_nothing_stored(registry)


@pytest.mark.parametrize("archive", ["adapter.zip", "adapter.tar.gz"])
def test_r15_archives_are_refused_unopened(artifact, registry, archive):
    src = artifact()
    (src / archive).write_bytes(b"PK\x03\x04" + b"\0" * 64)  # a zip bomb would never be opened
    with pytest.raises(UnexpectedFile, match="archives are not accepted"):
        registry.push(src)
    packed = shutil.make_archive(str(src.parent / "packed"), "zip", src)
    with pytest.raises(UnexpectedFile, match="archives are not accepted"):
        registry.push(packed)
    assert_nothing_stored(registry)


# -- row 16: files outside the allow-list -------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["pytorch_model.bin", "adapter_model.pt", "head.pkl", "hooks.py", "tokenizer.json", "vocab.txt"]
)
def test_r16_unexpected_files_are_refused(artifact, registry, name):
    src = artifact()
    (src / name).write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UnexpectedFile, match="unexpected file") as err:
        registry.push(src)
    assert err.value.code == "unexpected_file" and err.value.http_status == 400
    assert_nothing_stored(registry)
    assert registry.audit_entries()[-1].outcome == "refused"


def test_r16_method_specific_files(artifact, registry):
    src = artifact()
    shutil.copy(src / "head.safetensors", src / "encoder.safetensors")  # allow-listed, but not for LoRA
    with pytest.raises(UnexpectedFile, match="must not hold encoder.safetensors"):
        registry.push(src)
    src = artifact()
    (src / "adapter_model.safetensors").unlink()
    with pytest.raises(InvalidArtifact, match="needs adapter_model.safetensors"):
        registry.push(src)


# -- row 17: adapter_config.json against the allow-list ------------------------------------------------------
@pytest.mark.parametrize(
    "change, match",
    [
        ({"surprise": 1}, "unknown key 'surprise'"),
        (
            {"auto_mapping": {"base_model_class": "BertModel", "parent_library": "evil.module"}},
            "auto_mapping must be null",
        ),
        ({"use_dora": True}, "use_dora"),
        ({"modules_to_save": ["classifier"]}, "modules_to_save"),
        ({"layers_to_transform": [0, 0]}, "layers_to_transform"),
        ({"layers_to_transform": [0, 7]}, "layers the 2-layer base does not have"),
        ({"target_modules": ".*"}, "not a pattern"),
        ({"bias": "all"}, "bias"),
        ({"megatron_core": "os"}, "megatron_core"),
        ({"loftq_config": {"loftq_bits": 4}}, "loftq_config"),
        ({"peft_type": "PROMPT_TUNING"}, "only LORA and IA3"),
        ({"peft_type": "IA3"}, "unknown key"),
    ],
)
def test_r17_forbidden_configs_are_refused(artifact, registry, change, match):
    src = artifact()
    edit_json(src / "adapter_config.json", **change)
    with pytest.raises(ForbiddenConfig, match=match) as err:
        registry.push(src)
    assert err.value.code == "forbidden_config" and err.value.http_status == 400
    assert_nothing_stored(registry)


def test_r17_invalid_json_config(artifact, registry):
    src = artifact()
    (src / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4,')
    with pytest.raises(ForbiddenConfig, match="not valid JSON"):
        registry.push(src)
    (src / "adapter_config.json").write_text('{"peft_type": "LORA", "peft_type": "LORA"}')
    with pytest.raises(ForbiddenConfig, match="duplicate keys"):
        registry.push(src)


# -- row 18: base name, revision, hub ids: no network --------------------------------------------------------
@pytest.fixture()
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("network access attempted")

    for name in ("create_connection", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"base_model_name_or_path": "dmis-lab/biobert-v1.1"}, BaseMismatch, "not the served base"),
        ({"base_model_name_or_path": "https://huggingface.co/x/y"}, BaseMismatch, "not the served base"),
        ({"revision": "main"}, ForbiddenConfig, "revision"),
    ],
)
def test_r18_foreign_base_or_revision_refused_without_network(artifact, registry, no_network, change, error, match):
    src = artifact()
    edit_json(src / "adapter_config.json", **change)
    with pytest.raises(error, match=match) as err:
        registry.push(src)
    assert err.value.http_status == 400
    assert no_network == []
    assert_nothing_stored(registry)


def test_r18_served_base_name_is_accepted(artifact, registry, served, no_network):
    src = artifact()
    edit_json(src / "adapter_config.json", base_model_name_or_path=served.name)
    assert registry.push(src).version == "v1"
    assert no_network == []


def test_r18_artifact_from_another_base_is_refused(tmp_path, registry):
    from bedside.adapters.tiny import tiny_backbone
    from tests.helpers import save_task_artifacts

    other = save_task_artifacts(tmp_path / "other", tiny_backbone(seed=1), tasks=["mortality"])["mortality"]
    with pytest.raises(BaseMismatch, match="served base"):
        registry.push(other)
    assert_nothing_stored(registry)


# -- row 22: labels, heads and tasks -------------------------------------------------------------------------
def test_r22_label_count_must_equal_head_outputs(artifact, registry):
    src = artifact()
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["task"]["labels"] = ["survived", "died", "transferred"]
    manifest["head"]["num_labels"] = 3
    (src / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidArtifact, match="label count mismatch"):
        registry.push(src)


def test_r22_duplicate_labels_are_refused(artifact, registry):
    src = artifact()
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["task"]["labels"] = ["died", "died"]
    (src / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidArtifact, match="labels must be unique"):
        registry.push(src)


def test_r22_ner_head_for_mortality_is_refused(artifact, registry):
    with pytest.raises(InvalidArtifact, match="for task 'ner', not 'mortality'"):
        registry.push(artifact("ner"), task="mortality")
    src = artifact("ner")  # the same head, its manifest renamed to claim the mortality task
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["task"]["name"] = "mortality"
    (src / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidArtifact, match="token adapter for 'mortality'"):
        registry.push(src)
    assert_nothing_stored(registry)


def test_r22_custom_task_keeps_its_first_spec(artifact, registry):
    def as_custom(labels):
        src = artifact()
        manifest = json.loads((src / "manifest.json").read_text())
        manifest["task"] = {"name": "readmission", "kind": "sequence", "labels": labels}
        (src / "manifest.json").write_text(json.dumps(manifest))
        return src

    assert registry.push(as_custom(["no", "yes"])).version == "v1"
    with pytest.raises(InvalidArtifact, match="task 'readmission' is sequence with labels"):
        registry.push(as_custom(["yes", "no"]))


# -- limits and examples -------------------------------------------------------------------------------------
def test_size_caps_are_configurable(artifact):
    src = artifact()
    with pytest.raises(TooLarge):
        scan_dir(src, Limits(max_json_bytes=64))
    with pytest.raises(TooLarge) as err:
        scan_dir(src, Limits(max_total_bytes=1000))
    assert err.value.http_status == 413


def test_examples_must_be_input_expected_items(artifact, registry):
    src = artifact()
    (src / "examples.json").write_text(json.dumps([{"text": "x"}]))
    with pytest.raises(InvalidArtifact, match="examples.json"):
        registry.push(src)


def test_integer_head_weights_are_refused(registry, artifact):
    import torch
    from safetensors.torch import load_file, save_file

    src = artifact()
    state = load_file(src / "head.safetensors")
    save_file({k: v.to(torch.int64) for k, v in state.items()}, src / "head.safetensors")
    with pytest.raises(InvalidArtifact, match="floating point"):
        registry.push(src)
