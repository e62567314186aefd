"""ONNX export (design A: LoRA merged, head in the graph) against the torch model, on the tiny base."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from bedside.adapters.artifact import build_model, load_artifact
from bedside.adapters.onnx.export import ExportError, export_artifact
from bedside.adapters.onnx.session import CPU, CUDA, OnnxModel, ProviderError, open_session
from bedside.adapters.predict import Predictor
from bedside.adapters.tiny import tiny_backbone
from tests.helpers import save_task_artifacts

TASKS = ("mortality", "length_of_stay", "ner", "relations")
TEXTS = [
    "septic shock , intubated and started on iv vancomycin for pneumonia in the icu",
    "stable",
    "chest pain treated with iv lasix after troponin",
    "no fever , cough improved",
]
PAIRS = [
    {"text": "lasix was given for edema", "head": {"start": 0, "end": 5}, "tail": {"start": 20, "end": 25}},
    {
        "text": "the patient with severe chest pain was given aspirin and heparin in the icu after the ecg",
        "head": {"start": 24, "end": 34},
        "tail": {"start": 45, "end": 52},
    },
    {"text": "ct scan showed pneumonia", "head": {"start": 0, "end": 7}, "tail": {"start": 15, "end": 24}},
]


@pytest.fixture(scope="module")
def onnx_artifacts(tmp_path_factory):
    # A backbone of its own: building the artifacts injects PEFT layers into it.
    return save_task_artifacts(tmp_path_factory.mktemp("onnx-artifacts"), tiny_backbone(seed=0), seed=0)


@pytest.fixture(scope="module")
def base():
    return tiny_backbone(seed=0)  # never wrapped by PEFT: what the exporter copies


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


def _rows_and_reference(artifact_dir, task):
    model = build_model(load_artifact(artifact_dir), tiny_backbone(seed=0), task)
    predictor = Predictor(model, task)
    items = PAIRS if task == "relations" else TEXTS
    rows = [predictor.encode(item).rows[0] for item in items]
    assert len({len(row) for row in rows}) > 1, "rows of different lengths exercise padding"
    with torch.inference_mode():
        reference = model(rows, [task] * len(rows))
    return rows, reference, items, predictor


def _onnx_model(base, exported, artifact_dir, task):
    manifest = load_artifact(artifact_dir).manifest
    model = OnnxModel(base.tokenizer, provider=CPU)
    model.add(task, exported, manifest.task, manifest.max_length)
    return model


@pytest.mark.parametrize("task", TASKS)
def test_fp32_matches_torch(task, onnx_artifacts, base, cache):
    rows, reference, items, predictor = _rows_and_reference(onnx_artifacts[task], task)
    exported = export_artifact(onnx_artifacts[task], base, cache, "fp32")
    assert exported.fused_ops.get("Attention") == 2  # the optimiser fused both layers' attention
    model = _onnx_model(base, exported, onnx_artifacts[task], task)
    outputs = model(rows, [task] * len(rows))
    assert [o.shape for o in outputs] == [r.shape for r in reference]
    diff = max((torch.softmax(o, -1) - torch.softmax(r, -1)).abs().max().item() for o, r in zip(outputs, reference))
    assert diff <= 1e-3
    # The Predictor decodes ONNX logits like torch ones: same labels / entity spans.
    onnx_answers = Predictor(model, task).predict(items)
    torch_answers = predictor.predict(items)
    key = "entities" if task == "ner" else "label"
    assert [
        a[key] if key == "label" else [(e["start"], e["end"], e["type"]) for e in a[key]] for a in onnx_answers
    ] == [a[key] if key == "label" else [(e["start"], e["end"], e["type"]) for e in a[key]] for a in torch_answers]


@pytest.mark.parametrize("task", ["mortality", "ner", "relations"])
def test_int8_runs_and_is_finite(task, onnx_artifacts, base, cache):
    rows, reference, _, _ = _rows_and_reference(onnx_artifacts[task], task)
    exported = export_artifact(onnx_artifacts[task], base, cache, "int8")
    fp32 = export_artifact(onnx_artifacts[task], base, cache, "fp32")
    assert exported.model_path.stat().st_size < fp32.model_path.stat().st_size
    outputs = _onnx_model(base, exported, onnx_artifacts[task], task)(rows, [task] * len(rows))
    assert [o.shape for o in outputs] == [r.shape for r in reference]
    assert all(torch.isfinite(o).all() for o in outputs)


def test_int8_weight_bits_follow_the_cpu():
    from bedside.adapters.onnx.export import int8_weight_bits

    assert int8_weight_bits("flags\t: fpu sse avx2 avx512f") in (7, 8)  # 8 only on ARM
    assert int8_weight_bits("flags\t: fpu avx2 avx512f avx512_vnni") == 8
    assert int8_weight_bits("flags\t: fpu avx2 avx_vnni") == 8


@pytest.mark.parametrize("bits,limit", [(7, 64), (8, 127)])
def test_int8_weights_use_the_bits_asked(onnx_artifacts, base, cache, tmp_path, bits, limit):
    """7-bit weights: onnxruntime's u8·s8 kernel on CPUs without VNNI cannot saturate."""
    import onnx
    from onnx import numpy_helper

    from bedside.adapters.onnx.export import quantize_int8

    fp32 = export_artifact(onnx_artifacts["relations"], base, cache, "fp32")
    quantize_int8(fp32.model_path, tmp_path / "q.onnx", bits=bits)
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    weights = [
        numpy_helper.to_array(t)
        for t in graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and t.name.endswith("_quantized")
    ]
    assert weights, "no int8 weights in the int8 graph"
    peak = max(int(abs(w.astype(int)).max()) for w in weights)
    assert limit // 2 < peak <= limit


def test_mixed_batch_of_adapters(onnx_artifacts, base, cache):
    model = OnnxModel(base.tokenizer, provider=CPU)
    for task in ("mortality", "ner"):
        manifest = load_artifact(onnx_artifacts[task]).manifest
        model.add(task, export_artifact(onnx_artifacts[task], base, cache, "fp32"), manifest.task, manifest.max_length)
    seq = Predictor(model, "mortality").encode(TEXTS[0]).rows[0]
    tok = Predictor(model, "ner").encode(TEXTS[2]).rows[0]
    mixed = model([seq, tok, seq], ["mortality", "ner", "mortality"])
    alone = model([tok], ["ner"])[0]
    assert mixed[0].shape == (2,) and torch.equal(mixed[0], mixed[2])
    assert mixed[1].shape == alone.shape and torch.allclose(mixed[1], alone, atol=1e-5)


def test_unavailable_provider_raises(onnx_artifacts, base, cache):
    exported = export_artifact(onnx_artifacts["mortality"], base, cache, "fp32")
    with pytest.raises(ProviderError, match="not available"):
        open_session(exported.model_path, "NoSuchExecutionProvider")
    assert open_session(exported.model_path, CPU).get_providers()[0] == CPU


def test_cuda_is_never_a_silent_fallback(onnx_artifacts, base, cache):
    """Where CUDA cannot run (no GPU, no CUDA libraries) the session must not quietly use the CPU."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider")
    exported = export_artifact(onnx_artifacts["mortality"], base, cache, "fp32")
    try:
        session = open_session(exported.model_path, CUDA)
    except ProviderError:
        return
    assert session.get_providers()[0] == CUDA


def test_fallback_is_detected(onnx_artifacts, base, cache, monkeypatch):
    import onnxruntime as ort

    class FellBack:  # what onnxruntime does when a provider fails to load: runs on CPU anyway
        def __init__(self, path, sess_options=None, providers=None):
            self.providers = providers

        def get_providers(self):
            return [CPU]

    exported = export_artifact(onnx_artifacts["mortality"], base, cache, "fp32")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["FakeExecutionProvider", CPU])
    monkeypatch.setattr(ort, "InferenceSession", FellBack)
    with pytest.raises(ProviderError, match="fell back"):
        open_session(exported.model_path, "FakeExecutionProvider")


def test_cache_reuses_and_rebuilds(onnx_artifacts, base, tmp_path):
    first = export_artifact(onnx_artifacts["length_of_stay"], base, tmp_path, "fp32")
    assert first.built
    stamps = {p.name: p.stat().st_mtime_ns for p in first.folder.iterdir()}
    again = export_artifact(onnx_artifacts["length_of_stay"], base, tmp_path, "fp32")
    assert not again.built and again.folder == first.folder
    assert {p.name: p.stat().st_mtime_ns for p in again.folder.iterdir()} == stamps
    (first.folder / "model.onnx").unlink()
    rebuilt = export_artifact(onnx_artifacts["length_of_stay"], base, tmp_path, "fp32")
    assert rebuilt.built and rebuilt.model_path.is_file()
    # int8 has its own key; a different variant never reuses fp32's folder.
    int8 = export_artifact(onnx_artifacts["length_of_stay"], base, tmp_path, "int8")
    assert int8.folder != first.folder and int8.built
    assert not export_artifact(onnx_artifacts["length_of_stay"], base, tmp_path, "int8").built
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no work folders left


def test_other_base_is_refused(onnx_artifacts, tmp_path):
    from bedside.adapters.artifact import ArtifactError

    with pytest.raises(ArtifactError, match="different base"):
        export_artifact(onnx_artifacts["mortality"], tiny_backbone(seed=1), tmp_path, "fp32")


def test_backbone_in_use_by_peft_is_refused(onnx_artifacts, tmp_path):
    wrapped = tiny_backbone(seed=0)
    build_model(load_artifact(onnx_artifacts["mortality"]), wrapped, "mortality")  # injects LoRA layers
    with pytest.raises(ExportError, match="PEFT layers"):
        export_artifact(onnx_artifacts["mortality"], wrapped, tmp_path, "fp32")


def test_cli_export(onnx_artifacts, served_folder, tmp_path):
    import typer
    from typer.testing import CliRunner

    from bedside.adapters.onnx.cli import app as export_app

    app = typer.Typer()  # mounted as the root CLI mounts it: `bedside export onnx`
    app.add_typer(export_app, name="export")
    args = [
        "export",
        "onnx",
        "--adapter",
        str(onnx_artifacts["relations"]),
        "--backbone",
        str(served_folder),
        "--out",
        str(tmp_path),
        "--int8",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "model.onnx" in result.output and "Attention" in result.output
    assert "provider: CPUExecutionProvider" in result.output or "provider: CUDAExecutionProvider" in result.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "(cached)" in again.output and "(exported)" not in again.output
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # fp32 and int8


# -- design B: one shared encoder graph, LoRA weights as inputs ------------------------------
def _mixed_batch(onnx_artifacts):
    """Two rows per task, interleaved by adapter and length, and the torch bank's logits."""
    from bedside.adapters.artifact import attach
    from bedside.adapters.multi import MultiAdapterModel

    artifacts = {task: load_artifact(onnx_artifacts[task]) for task in TASKS}
    reference = MultiAdapterModel(tiny_backbone(seed=0))
    for task in TASKS:
        attach(reference, artifacts[task], task)
    reference.eval()
    rows, names = [], []
    for task in TASKS:
        predictor = Predictor(reference, task)
        for item in PAIRS[:2] if task == "relations" else TEXTS[:2] if task != "ner" else TEXTS[1:3]:
            rows.append(predictor.encode(item).rows[0])
            names.append(task)
    order = [5, 0, 7, 2, 4, 1, 6, 3]
    rows, names = [rows[i] for i in order], [names[i] for i in order]
    with torch.inference_mode():
        expected = reference(rows, names)
    return artifacts, rows, names, expected


def _shared_model(base, cache, artifacts, variant):
    from bedside.adapters.onnx.shared import SharedOnnxModel, export_shared, linear_targets

    graph, meta = export_shared(base, linear_targets(base), cache, variant=variant)
    shared = SharedOnnxModel(base, graph, meta, provider=CPU)
    for task in TASKS:
        shared.add(task, artifacts[task])
    return graph, shared


def _max_probability_gap(got, expected):
    return max((torch.softmax(g, -1) - torch.softmax(e, -1)).abs().max().item() for g, e in zip(got, expected))


def test_shared_graph_serves_a_mixed_batch_of_all_four(onnx_artifacts, base, cache):
    from bedside.adapters.onnx.shared import export_shared, linear_targets

    artifacts, rows, names, expected = _mixed_batch(onnx_artifacts)
    graph, shared = _shared_model(base, cache, artifacts, "fp32")
    got = shared(rows, names)
    assert [g.shape for g in got] == [e.shape for e in expected]
    assert _max_probability_gap(got, expected) <= 1e-3
    # A swap re-stacks the inputs; the graph and its session stay.
    session = shared.session
    shared.remove("ner")
    shared.add("ner", artifacts["ner"])
    again = shared(rows, names)
    assert shared.session is session
    assert all(torch.allclose(a, g, atol=1e-5) for a, g in zip(again, got))
    assert export_shared(base, linear_targets(base), cache)[0] == graph  # cached


def test_int8_shared_graph_quantises_the_base_and_keeps_lora_inputs_float(onnx_artifacts, base, cache):
    import onnx

    artifacts, rows, names, expected = _mixed_batch(onnx_artifacts)
    graph, shared = _shared_model(base, cache, artifacts, "int8")
    model = onnx.load(str(graph)).graph
    int8 = [t.name for t in model.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8, "no int8 weights in the int8 shared graph"
    lora = [i for i in model.input if i.name.startswith(("A_", "B_"))]
    assert lora and all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in lora)
    got = shared(rows, names)
    assert [g.shape for g in got] == [e.shape for e in expected]
    assert all(torch.isfinite(g).all() for g in got)
    assert _max_probability_gap(got, expected) <= 0.1
    # A new version is data: attaching it keeps the graph file and the session.
    stamp, session = graph.stat().st_mtime_ns, shared.session
    shared.remove("mortality")
    shared.add("mortality", artifacts["mortality"])
    assert shared.session is session and graph.stat().st_mtime_ns == stamp


def test_fp16_variant_has_half_weights_and_float_logits(onnx_artifacts, base, cache):
    import numpy as np
    import onnx

    exported = export_artifact(onnx_artifacts["mortality"], base, cache, "fp16")
    graph = onnx.load(str(exported.model_path)).graph
    assert onnx.TensorProto.FLOAT16 in {t.data_type for t in graph.initializer}
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # callers see float32
    fp32 = export_artifact(onnx_artifacts["mortality"], base, cache, "fp32")
    feeds = {"input_ids": np.array([[1, 5, 9, 12, 2]], np.int64), "attention_mask": np.ones((1, 5), np.int64)}
    half = open_session(exported.model_path, CPU).run(None, feeds)[0]
    full = open_session(fp32.model_path, CPU).run(None, feeds)[0]
    assert np.abs(half - full).max() < 2e-2
