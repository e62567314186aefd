import pytest
import torch

from bedside.adapters.examples import Span
from bedside.adapters.heads import build_head
from bedside.adapters.multi import MultiAdapterModel
from bedside.adapters.tasks import PRESETS
from tests.helpers import four_task_model, random_lora

TEXT_A = "septic shock with lactate 6.1 , intubated in the icu"
TEXT_B = "admitted for elective knee surgery , stable"
REL_TEXT = "iv vancomycin was started for pneumonia and blood culture showed bacteremia"


def span(phrase):
    start = REL_TEXT.index(phrase)
    return Span(start, start + len(phrase))


def mixed_rows(model):
    s = model.slots
    return [
        ("mortality", s["mortality"].encoder.encode_text(TEXT_A)),
        ("ner", s["ner"].encoder.encode_words(["chest", "pain", "treated", "with", "iv", "lasix"])),
        ("relations", s["relations"].encoder.encode_pair(REL_TEXT, span("iv vancomycin"), span("pneumonia"))),
        ("length_of_stay", s["length_of_stay"].encoder.encode_text(TEXT_B)),
        ("mortality", s["mortality"].encoder.encode_text(TEXT_B)),
        ("ner", s["ner"].encoder.encode_words(TEXT_A.split())),
        ("relations", s["relations"].encoder.encode_pair(REL_TEXT, span("blood culture"), span("bacteremia"))),
    ]


def test_mixed_batch_matches_each_adapter_alone(fresh_tiny):
    model = four_task_model(fresh_tiny)
    names, rows = zip(*mixed_rows(model))
    with torch.inference_mode():
        mixed = model(list(rows), list(names))
        for name, row, out in zip(names, rows, mixed):
            alone = model([row], [name])[0]
            assert out.shape == alone.shape
            assert (out - alone).abs().max().item() <= 1e-5, name
    # One row per head kind, each shaped as its task says.
    assert mixed[1].shape == (6, PRESETS["ner"].num_labels)
    assert mixed[0].shape == (2,) and mixed[3].shape == (4,) and mixed[2].shape == (9,)


def test_adapters_change_the_encoder_output(fresh_tiny):
    model = four_task_model(fresh_tiny)
    row = model.slots["mortality"].encoder.encode_text(TEXT_A)
    with torch.inference_mode():
        h_mort, _ = model.hidden_states([row], ["mortality"])
        h_los, _ = model.hidden_states([row], ["length_of_stay"])
    assert (h_mort - h_los).abs().max() > 1e-3


def test_adapters_can_be_added_and_removed_at_run_time(fresh_tiny):
    model = four_task_model(fresh_tiny)
    row = model.slots["mortality"].encoder.encode_text(TEXT_A)
    with torch.inference_mode():
        before = model([row], ["mortality"])[0]
    model.remove_adapter("ner")
    task = PRESETS["mortality"]
    model.add_adapter("mortality-v2", task, build_head(task.kind, fresh_tiny.hidden_size, 2), random_lora(rank=2))
    model.eval()
    with torch.inference_mode():
        after = model([row, row], ["mortality", "mortality-v2"])
    assert torch.allclose(before, after[0], atol=1e-5)
    assert "ner" not in model.slots
    for name in list(model.slots):
        model.remove_adapter(name)
    assert model.peft is None  # the last LoRA adapter gone: back to the bare encoder
    assert not any("lora" in n for n, _ in fresh_tiny.encoder.named_modules())


def test_duplicate_name_and_head_mismatch_are_refused(fresh_tiny):
    model = MultiAdapterModel(fresh_tiny)
    task = PRESETS["mortality"]
    with pytest.raises(ValueError, match="outputs"):
        model.add_adapter("m", task, build_head(task.kind, fresh_tiny.hidden_size, 3), random_lora())
    model.add_adapter("m", task, build_head(task.kind, fresh_tiny.hidden_size, 2), random_lora())
    with pytest.raises(KeyError):
        model.add_adapter("m", task, build_head(task.kind, fresh_tiny.hidden_size, 2), random_lora())


def test_training_mode_trains_one_adapter_only(fresh_tiny):
    model = four_task_model(fresh_tiny).train()
    rows = [
        model.slots["mortality"].encoder.encode_text(TEXT_A, "died"),
        model.slots["mortality"].encoder.encode_text(TEXT_B, "survived"),
    ]
    loss = model.loss(rows, "mortality")
    loss.backward()
    peft = model.peft
    name = model.slots["mortality"].peft_name
    other = model.slots["ner"].peft_name
    grads = {n: p.grad for n, p in peft.named_parameters() if "lora_" in n}
    assert any(g is not None for n, g in grads.items() if f".{name}." in n)
    assert all(g is None for n, g in grads.items() if f".{other}." in n)
