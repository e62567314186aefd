"""Bank serving gives the same outputs as PEFT, for single and mixed batches."""

import pytest
import torch

from bedside.adapters.artifact import attach, load_artifact
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.tiny import tiny_backbone
from tests.adapters.test_multi import mixed_rows
from tests.helpers import save_task_artifacts


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_task_artifacts(tmp_path_factory.mktemp("bank"), tiny_backbone(seed=0), seed=0)


def load(saved, lora):
    model = MultiAdapterModel(tiny_backbone(seed=0), lora=lora)
    for task, path in saved.items():
        attach(model, load_artifact(path), task)
    return model.eval()


@pytest.mark.parametrize("merge_min_tokens", [10**9, 1], ids=["low-rank", "merged"])
def test_bank_matches_peft_on_mixed_and_single_batches(saved, merge_min_tokens, monkeypatch):
    monkeypatch.setattr("bedside.adapters.bank.MERGE_MIN_TOKENS", merge_min_tokens)
    peft, bank = load(saved, "peft"), load(saved, "bank")
    names, rows = zip(*mixed_rows(peft))
    with torch.inference_mode():
        expected = peft(list(rows), list(names))
        got = bank(list(rows), list(names))
        for e, g in zip(expected, got):
            assert (e - g).abs().max().item() <= 1e-5
        for name, row, e in zip(names, rows, expected):
            assert (bank([row], [name])[0] - e).abs().max().item() <= 1e-5


def test_bank_add_remove_leaves_other_adapters_and_base_intact(saved):
    bank = load(saved, "bank")
    names, rows = zip(*mixed_rows(bank))
    with torch.inference_mode():
        before = bank(list(rows), list(names))
        bank.remove_adapter("ner")
        keep = [i for i, n in enumerate(names) if n != "ner"]
        after = bank([rows[i] for i in keep], [names[i] for i in keep])
    for i, out in zip(keep, after):
        assert torch.allclose(before[i], out, atol=1e-5)
    for task in list(bank.slots):
        bank.remove_adapter(task)
    plain = tiny_backbone(seed=0).encoder
    ids = torch.tensor([rows[0].input_ids])
    with torch.inference_mode():
        assert torch.allclose(
            bank.backbone.encoder(input_ids=ids).last_hidden_state, plain(input_ids=ids).last_hidden_state, atol=1e-6
        )


def test_bank_refuses_weights_that_do_not_fit(saved):
    wide = MultiAdapterModel(tiny_backbone(seed=0, hidden_size=48), lora="bank")
    art = load_artifact(saved["mortality"])
    with pytest.raises(ValueError):
        wide.add_adapter("m", art.manifest.task, art.build_head(), art.peft_config, art.peft_state)
    assert not wide.slots and all(not b.adapters for b in wide.banks.banks.values())


def test_registry_smoke_copy_of_a_banked_encoder_is_the_pristine_base(saved):
    from bedside.adapters.backbones import fingerprint
    from bedside.adapters.registry.smoke import pristine_encoder

    bank = load(saved, "bank")
    clean = pristine_encoder(bank.backbone.encoder)
    assert fingerprint(clean) == tiny_backbone(seed=0).fingerprint
    assert not any(type(m).__name__ == "BankedLinear" for m in clean.modules())
