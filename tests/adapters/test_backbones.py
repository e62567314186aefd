import socket

import pytest

from bedside.adapters.backbones import BackboneError, load_backbone
from bedside.adapters.tiny import tiny_backbone


def test_tiny_fingerprint_is_stable_and_survives_save_load(tiny, tmp_path):
    assert tiny_backbone(seed=0).fingerprint == tiny.fingerprint
    assert tiny_backbone(seed=1).fingerprint != tiny.fingerprint
    reloaded = load_backbone(str(tiny.save(tmp_path / "tiny")))
    assert reloaded.fingerprint == tiny.fingerprint


def test_fingerprint_changes_when_a_weight_changes(fresh_tiny):
    before = fresh_tiny.fingerprint
    fresh_tiny.encoder.embeddings.word_embeddings.weight.data[0, 0] += 1e-3
    from bedside.adapters.backbones import fingerprint

    assert fingerprint(fresh_tiny.encoder) != before


def test_embedded_default_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    backbone = load_backbone()
    assert backbone.hidden_size == 384 and backbone.encoder.config.num_hidden_layers == 6
    assert backbone.fingerprint.startswith("sha256:")
    ids = backbone.tokenizer("Patient denies chest pain.")["input_ids"]
    assert backbone.encoder(input_ids=__import__("torch").tensor([ids])).last_hidden_state.shape[-1] == 384


def test_embedded_first_layers_make_a_smaller_model():
    small = load_backbone("embedded:layers=2")
    assert small.encoder.config.num_hidden_layers == 2 and len(small.encoder.encoder.layer) == 2


def test_missing_folder_or_hub_id_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="cannot load backbone"):
        load_backbone("nobody/no-such-model")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(BackboneError, match="is a file"):
        load_backbone(str(tmp_path / "file.txt"))
