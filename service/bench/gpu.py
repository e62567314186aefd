"""The GPU suite: one command, minutes, on a bare GPU machine (``bedside bench gpu``).

Written for a machine that has Python, a CUDA build of torch, transformers, peft, numpy and
prometheus-client but no network and no install of bedside: run it from a source checkout
with ``python -m bedside.service.bench.gpu`` (``deploy/gpu-suite.sh`` installs carried
wheels first). It checks what is missing before importing anything of bedside's and says
which wheels to carry. Encoders are random, of the real shapes (MiniLM-L6 and BERT-base):
speed depends on shape, not weights.

Parts, fp16 and bf16, batch × 128 and 512 tokens:

- ``bare``: the bare encoder forward, sequences/s and tokens/s;
- ``mixed4``: four mixed LoRA adapters (r=16 on every Linear, four head kinds) through the
  bank and through PEFT's per-adapter loop, time over the bare forward on the same rows;
- ``notes``: the served composition on whole-note windows (three tasks' windows of long
  notes batched together), notes/s and tokens/s;
- ``memory``: GPU memory per extra adapter against a copy of the encoder;
- ``http`` (when bentoml and the service's other packages import): a real ``bentoml serve`` on
  the GPU with four random adapters of the MiniLM-L6 shape, closed-loop aiohttp clients at 1
  to 256, against a transformers pipeline per task on the same GPU (:mod:`.gpu_http`). Its
  time is set aside first; the measured parts share what is left of the budget.

``--dry-run``: the same code on the CPU with the tiny shape and two batch sizes, in seconds
(a test in the suite runs it, so the script cannot rot).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Modules the measured parts import, and the distribution that brings each.
MODEL_NEEDS = {
    "torch": "torch",
    "transformers": "transformers",
    "peft": "peft",
    "numpy": "numpy",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
    "yaml": "PyYAML",
    "psutil": "psutil",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic-core",
    "annotated_types": "annotated-types",
    "typing_inspection": "typing-inspection",
}
#: What the HTTP part (``bedside bench service``) needs beyond those.
SERVICE_NEEDS = {
    "bentoml": "bentoml",
    "fastapi": "fastapi",
    "pydantic_settings": "pydantic-settings",
    "aiohttp": "aiohttp",
    "prometheus_client": "prometheus-client",
    "typer": "typer",
}
PLATFORMS = "--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"


def pins(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """name (normalised) -> version, from the pinned requirements the project installs."""
    out = {}
    if requirements.is_file():
        for line in requirements.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
            if m:
                out[_normal(m.group(1))] = m.group(2)
    return out


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing(needs: dict[str, str]) -> list[str]:
    """The distributions whose module does not import here."""
    return [dist for module, dist in needs.items() if importlib.util.find_spec(module) is None]


def wheel_advice(dists: list[str], python: str = "3.12", deps: bool = False) -> str:
    """The ``pip download`` line, run where pip has an index, that fetches the missing wheels
    (``deps``: with what they depend on, for packages like bentoml that bring dozens)."""
    pinned = pins()
    specs = " ".join(f"{d}=={pinned[_normal(d)]}" if _normal(d) in pinned else d for d in dists)
    return (
        f"python3 -m pip download{'' if deps else ' --no-deps'} --only-binary=:all: --python-version {python} "
        f"--implementation cp {PLATFORMS} -d .whl {specs}"
    )


def check_dependencies() -> tuple[list[str], list[str]]:
    """(missing for the measured parts, missing for the HTTP part), printed with the fix."""
    model, service = missing(MODEL_NEEDS), missing(SERVICE_NEEDS)
    for what, dists, deps in (("the measured parts", model, False), ("the HTTP part", service, True)):
        if dists:
            print(f"missing for {what}: {', '.join(dists)}")
            print("  carry them as wheels" + (" with their dependencies:" if deps else ":"))
            print("  " + wheel_advice(dists, deps=deps))
            print("  then: bash deploy/gpu-suite.sh  (installs .whl/*.whl into /tmp/site first)")
    return model, service


# -- the measured parts ------------------------------------------------------------------------
class Plan:
    """Shapes, precisions and sizes of one run."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.shapes = ["tiny"] if dry_run else ["minilm-l6", "bert-base"]
        self.dtypes = ["float32", "bfloat16"] if dry_run else ["float16", "bfloat16"]
        self.lengths = [16] if dry_run else [128, 512]
        self.batches = [1, 2] if dry_run else [1, 8, 32, 64, 128, 256]
        self.rounds = 1 if dry_run else 10
        self.note_words = 120 if dry_run else 3000
        self.notes = 2 if dry_run else 16
        self.extra_adapters = 2 if dry_run else 8
        self.http_shape = "tiny" if dry_run else "minilm-l6"
        self.http_levels = [1, 2] if dry_run else [1, 8, 32, 64, 128, 256]
        self.http_seconds = 1.0 if dry_run else 8.0
        self.http_warmup = 0.5 if dry_run else 2.0

    @property
    def http_reserve_s(self) -> float:
        """The HTTP part's share of the budget: a server start, each level, the pipeline twice."""
        start, pipeline = (15.0, 2.0) if self.dry_run else (60.0, 20.0)
        return start + pipeline + len(self.http_levels) * (self.http_seconds + self.http_warmup + 3.0)


def _timer(device: str):
    import torch

    def seconds(fn, rounds: int) -> float:
        fn()  # warm-up (kernels, allocator)
        if device == "cuda":
            torch.cuda.synchronize()
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - start)
        samples.sort()
        return samples[len(samples) // 2]

    return seconds


def _models(shape: str, dtype: str, device: str):
    import torch

    from bedside.adapters.tiny import shaped_backbone

    from .model import TARGETS, build_models

    cast = getattr(torch, dtype)
    backbone = shaped_backbone(shape)
    encoder: Any = backbone.encoder  # transformers types .to() for PreTrainedModel only
    encoder.to(device, cast)  # first: the bank places LoRA weights beside the base's
    peft_model, bank_model = build_models(backbone, TARGETS["all-linear"], rank=16)
    return backbone, peft_model.to(device, cast), bank_model.to(device, cast), backbone.encoder


def measure_encoders(plan: Plan, device: str, deadline: float, log) -> list[dict]:
    """``bare`` and ``mixed4`` rows for every shape, precision, length and batch."""
    import torch

    from bedside.adapters.tasks import PRESETS

    from .model import synthetic_rows

    seconds = _timer(device)
    names = list(PRESETS)
    rows_out: list[dict] = []
    for shape in plan.shapes:
        for dtype in plan.dtypes:
            backbone, peft_model, bank_model, bare = _models(shape, dtype, device)
            for length in plan.lengths:
                for batch in plan.batches:
                    if time.monotonic() > deadline:
                        log(f"time budget spent: skipped {shape} {dtype} {length}x{batch} onwards")
                        return rows_out
                    rows = synthetic_rows(backbone, batch, length, [PRESETS[n].kind for n in names])
                    mixed = [names[i % 4] for i in range(batch)]
                    ids, mask = bank_model.pad(rows)
                    ids, mask = ids.to(device), mask.to(device)
                    with torch.inference_mode():
                        t_bare = seconds(lambda m=bare: m(input_ids=ids, attention_mask=mask), plan.rounds)
                        t_bank = seconds(lambda m=bank_model: m(rows, mixed), plan.rounds)
                        t_peft = seconds(lambda m=peft_model: m(rows, mixed), plan.rounds)
                    row = {
                        "shape": shape,
                        "dtype": dtype,
                        "length": length,
                        "batch": batch,
                        "bare_s": t_bare,
                        "bare_seq_per_s": batch / t_bare,
                        "bare_tokens_per_s": batch * length / t_bare,
                        "bank_mixed4_over_bare": t_bank / t_bare,
                        "peft_mixed4_over_bare": t_peft / t_bare,
                    }
                    rows_out.append(row)
                    log(row)
            del peft_model, bank_model, bare
            _free(device)
    return rows_out


def measure_notes(plan: Plan, device: str, deadline: float, log) -> list[dict]:
    """Whole notes through the bank: every note's windows for three tasks, batched together."""
    import random

    import torch

    from bedside.adapters.predict import Predictor
    from bedside.adapters.tiny import COMMON_WORDS

    seconds = _timer(device)
    tasks = ["mortality", "length_of_stay", "ner"]
    out = []
    for shape in plan.shapes:
        if time.monotonic() > deadline:
            log(f"time budget spent: notes on {shape} skipped")
            break
        dtype = plan.dtypes[0]
        _, _, bank_model, _ = _models(shape, dtype, device)
        rng = random.Random(0)
        notes = [" ".join(rng.choice(COMMON_WORDS) for _ in range(plan.note_words)) for _ in range(plan.notes)]
        rows, names, tokens = [], [], 0
        for task in tasks:
            predictor = Predictor(bank_model, task)
            for note in notes:
                item = predictor.encode(note)
                rows += item.rows
                names += [task] * len(item.rows)
                tokens += sum(len(r) for r in item.rows)
        batch = 64

        def run(model=bank_model) -> None:
            for i in range(0, len(rows), batch):
                model(rows[i : i + batch], names[i : i + batch])

        with torch.inference_mode():
            t = seconds(run, max(1, plan.rounds // 3))
        row = {
            "shape": shape,
            "dtype": dtype,
            "notes": len(notes) * len(tasks),
            "windows": len(rows),
            "window_tokens": tokens,
            "seconds": t,
            "notes_per_s": len(notes) * len(tasks) / t,
            "tokens_per_s": tokens / t,
        }
        out.append(row)
        log(row)
        del bank_model
        _free(device)
    return out


def measure_memory(plan: Plan, device: str, log) -> list[dict]:
    """Device memory per extra adapter in the bank, against the encoder's own size."""
    import torch
    from peft import LoraConfig

    from bedside.adapters.heads import build_head
    from bedside.adapters.multi import MultiAdapterModel
    from bedside.adapters.tasks import PRESETS
    from bedside.adapters.tiny import shaped_backbone

    from .memory import _lora_state
    from .model import TARGETS

    out = []
    for shape in plan.shapes:
        backbone = shaped_backbone(shape)
        model = MultiAdapterModel(backbone, lora="bank").eval()
        config = LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS["all-linear"], init_lora_weights=False)
        state = _lora_state(model, config)
        model.to(device, torch.float16 if device == "cuda" else torch.float32)
        task = PRESETS["mortality"]
        before = _allocated(model, device)
        for i in range(plan.extra_adapters):
            head = build_head(task.kind, backbone.hidden_size, task.num_labels)
            model.add_adapter(f"a{i}", task, head, config, {k: v.clone() for k, v in state.items()})
            model.to(device)
        per_adapter = (_allocated(model, device) - before) / plan.extra_adapters
        encoder_bytes = sum(p.numel() * p.element_size() for p in backbone.encoder.parameters())
        row = {
            "shape": shape,
            "per_adapter_mb": per_adapter / 1e6,
            "encoder_mb": encoder_bytes / 1e6,
            "per_adapter_over_encoder": per_adapter / encoder_bytes,
        }
        out.append(row)
        log(row)
        del model
        _free(device)
    return out


def _allocated(model, device: str) -> int:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    tensors = {id(t): t for t in model.state_dict().values()}  # on the CPU: what the model holds
    for module in model.modules():
        for pair in getattr(module, "adapters", {}).values():  # the bank's LoRA pairs
            for t in pair:
                tensors[id(t)] = t
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _http(plan: Plan, device: str, deadline: float, out: Path, log) -> list[dict]:
    import shutil
    import tempfile

    from .gpu_http import measure_http

    if time.monotonic() > deadline - plan.http_reserve_s / 2:
        log("time budget spent: HTTP part skipped")
        return []
    work = Path(tempfile.mkdtemp(prefix="bedside-gpu-http-"))
    try:
        args = (plan.http_levels, plan.http_seconds, plan.http_warmup, deadline, work, log)
        return measure_http(plan.http_shape, device, *args)
    finally:
        out.mkdir(parents=True, exist_ok=True)
        if (work / "server.log").is_file():  # kept beside the report: what the server said
            shutil.copy(work / "server.log", out / "http-server.log")
        shutil.rmtree(work, ignore_errors=True)


# -- the report --------------------------------------------------------------------------------
def environment(device: str) -> dict:
    import peft
    import torch
    import transformers

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
    }
    return env


def markdown(report: dict) -> str:
    lines = [f"# GPU suite ({report['environment']['device']})", ""]
    lines.append("| " + " | ".join(f"{k}: {v}" for k, v in report["environment"].items()) + " |")
    lines.append("")
    for part, rows in report["parts"].items():
        if not rows:
            continue
        keys = list(rows[0])
        lines += [f"## {part}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for row in rows:
            cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for target, value in report.get("targets", {}).items():
        lines.append(f"- {target}: {value}")
    lines.append(f"\nwall time: {report['wall_s']:.0f} s; skipped: {report['skipped'] or 'nothing'}")
    return "\n".join(lines) + "\n"


def targets(encoders: list[dict], http: list[dict]) -> dict:
    """The GPU targets: four mixed adapters ≤ 1.10× bare at 64 × 128 in fp16; the service ≥ 10×
    the per-request pipeline at 64 clients."""
    hits = [r for r in encoders if r["batch"] == 64 and r["length"] == 128 and r["dtype"] == "float16"]
    out = {
        f"mixed4 bank over bare, 64x128 fp16, {r['shape']} (target <= 1.10)": round(r["bank_mixed4_over_bare"], 3)
        for r in hits
    }
    for r in (r for r in http if r["concurrency"] == 64):
        out[f"service over pipeline, 64 clients, {r['shape']} (target >= 10)"] = round(r["service_over_pipeline"], 2)
    return out


def run(dry_run: bool, out: Path, budget_s: float = 420.0) -> dict:
    """Every part, in a time budget (the rest is reported skipped); JSON and Markdown into ``out``."""
    start = time.monotonic()
    need_model, need_service = check_dependencies()
    if need_model:
        raise SystemExit(2)
    import torch

    device = "cpu" if dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run on a CPU")
    plan = Plan(dry_run)
    http = not need_service
    deadline = start + budget_s - (plan.http_reserve_s if http else 0.0)
    skipped: list[str] = []

    def log(message) -> None:
        if isinstance(message, str):
            skipped.append(message)
        print(message, flush=True)

    parts = {"mixed4": measure_encoders(plan, device, deadline, log)}
    parts["notes"] = measure_notes(plan, device, deadline, log)
    parts["memory"] = measure_memory(plan, device, log)
    parts["http"] = []
    if http:
        parts["http"] = _http(plan, device, start + budget_s, out, log)
    else:
        skipped.append(f"HTTP part: missing {', '.join(need_service)}")
    report = {
        "dry_run": dry_run,
        "environment": environment(device),
        "parts": parts,
        "targets": targets(parts["mixed4"], parts["http"]),
        "skipped": skipped,
        "wall_s": time.monotonic() - start,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "gpu.md").write_text(markdown(report), encoding="utf-8")
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'} in {report['wall_s']:.0f} s")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bedside.service.bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, seconds")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-gpu"))
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new measurements after this")
    args = parser.parse_args(argv)
    run(args.dry_run, args.out, args.budget_s)


if __name__ == "__main__":
    main()
