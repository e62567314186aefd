"""Run one planned run (or all): train, score, record; a finished run is never redone.

Each run writes ``OUT/runs/<run id>/result.json`` last and atomically: a run killed midway
leaves no result and is redone on the next sweep; a run that raised records its error and
the sweep goes on. Pre-trained backbones are made once under ``OUT/backbones/`` (file-locked,
so parallel workers wait for one another).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

from filelock import FileLock

from bedside.adapters.backbones import load_backbone
from bedside.adapters.tasks import resolve_task

from .config import BackboneEntry, StudyConfig, TaskEntry
from .plan import Run

RESULT = "result.json"


def run_dir(out: Path, run: Run) -> Path:
    return out / "runs" / run.run_id


def read_result(out: Path, run: Run) -> dict | None:
    file = run_dir(out, run) / RESULT
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _path(base: Path, value: str) -> str:
    candidate = Path(value)
    return str(candidate if candidate.is_absolute() else (base / candidate))


def backbone_spec(config: StudyConfig, entry: BackboneEntry, base: Path, out: Path, progress: bool = True) -> str:
    """The spec that loads this backbone; a pretrain entry is made first (once)."""
    if entry.pretrain is None:
        spec = str(entry.spec)
        local = base / spec
        return str(local) if not spec.startswith("embedded") and local.exists() else spec
    from ..pretrain import pretrain

    folder = out / "backbones" / entry.name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / "pretrain.json").is_file():
            p = entry.pretrain
            pretrain(
                p.base,
                [_path(base, c) for c in p.corpus],
                folder,
                steps=p.steps,
                batch_size=p.batch_size,
                max_length=p.max_length,
                lr=p.lr,
                seed=p.seed,
                progress=progress,
            )
    return str(folder)


def data_path(entry: TaskEntry, base: Path, out: Path) -> str:
    """The task's data; ``synth:<folder>[:size]`` is written once (seed 0) under ``OUT/data``."""
    if not entry.data.startswith("synth:"):
        return _path(base, entry.data)
    from ..synth import write_synthetic

    _, folder, *size = entry.data.split(":")
    root = out / "data" / f"synth-{size[0] if size else 600}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / ".complete").is_file():
            write_synthetic(root, seed=0, size=int(size[0]) if size else 600)
            (root / ".complete").write_text("")
    return str(root / folder)


def subsample(splits: dict, entry: TaskEntry) -> dict:
    """Fixed subsets (the same for every run of the study, whatever its seed)."""
    import random

    limits = {"train": entry.max_train, "val": entry.max_eval, "test": entry.max_eval}
    out = {}
    for split, examples in splits.items():
        n = limits.get(split)
        out[split] = random.Random(f"{entry.name}:{split}").sample(examples, n) if n and n < len(examples) else examples
    return out


def _task(config: StudyConfig, name: str) -> TaskEntry:
    return next(t for t in config.tasks if t.name == name)


def _backbone(config: StudyConfig, name: str) -> BackboneEntry:
    return next(b for b in config.backbones if b.name == name)


def settings_for(config: StudyConfig, run: Run):
    from ..settings import TrainSettings

    values = {**config.train, **config.method_train.get(run.method, {}), "method": run.method, "seed": run.seed}
    if run.rank is not None:
        default = TrainSettings(**{k: v for k, v in values.items() if k not in ("rank", "alpha")})
        values.update(rank=run.rank, alpha=run.rank * default.alpha / default.rank)  # same scaling at every rank
    if run.few_shot is not None:
        values["few_shot"] = run.few_shot
    if run.time_budget is not None:
        values["time_budget"] = run.time_budget
    return TrainSettings(**values)


def execute(config: StudyConfig, config_path: Path, run: Run, out: Path, progress: bool = True) -> dict:
    """Train and score one run; return (and save) its result. Errors are recorded, not raised."""
    from ..loaders import load_dataset
    from ..trainer import train

    existing = read_result(out, run)
    if existing and existing.get("status") == "ok":
        return existing
    folder = run_dir(out, run)
    folder.mkdir(parents=True, exist_ok=True)
    base = config.base_dir(config_path)
    entry, task_entry = _backbone(config, run.backbone), _task(config, run.task)
    record = {"run_id": run.run_id, **run.as_dict(), "domain": entry.domain, "status": "failed"}
    try:
        settings = settings_for(config, run)
        spec = resolve_task(_path(base, task_entry.task) if Path(base / task_entry.task).exists() else task_entry.task)
        options = {"label_map": _path(base, task_entry.label_map)} if task_entry.label_map else {}
        splits = subsample(
            load_dataset(data_path(task_entry, base, out), spec, task_entry.format, **options), task_entry
        )
        backbone = load_backbone(backbone_spec(config, entry, base, out, progress))
        backbone_params = backbone.num_parameters()
        result = train(
            spec, splits, settings, folder / "train", backbone=backbone, name=run.run_id[:120], progress=progress
        )
        record.update(
            status="ok",
            backbone_params=backbone_params,
            task_kind=spec.kind.value,
            metrics=result.metrics,
            intervals=result.intervals,
            cost=result.cost,
            settings=settings.model_dump(mode="json"),
        )
    except Exception as exc:  # one failed run must not stop the sweep
        record["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        record["traceback"] = traceback.format_exc()[-4000:]
    _write_json(folder / RESULT, record)
    return record


def pending(config: StudyConfig, runs: list[Run], out: Path, retry_failed: bool) -> list[int]:
    todo = []
    for i, run in enumerate(runs):
        result = read_result(out, run)
        if result is None or (retry_failed and result.get("status") != "ok"):
            todo.append(i)
    return todo


def run_parallel(config_path: Path, indices: list[int], workers: int, out: Path, on_done=None) -> None:
    """Each run in its own process (``bedside sweep CONFIG --index i``), ``workers`` at a time."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "BEDSIDE_TORCH_THREADS": str(threads)}
    queue = list(indices)
    running: dict[int, tuple] = {}
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    while queue or running:
        while queue and len(running) < workers:
            i = queue.pop(0)
            log = open(logs / f"run-{i}.log", "wb")  # noqa: SIM115 - closed when the worker ends
            command = [
                sys.executable,
                "-m",
                "bedside.cli",
                "sweep",
                str(config_path),
                "--index",
                str(i),
                "--out",
                str(out),
                "--no-progress",
            ]
            running[i] = (subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        for i, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                del running[i]
                if on_done:
                    on_done(i, process.returncode)
        if running:
            try:
                next(iter(running.values()))[0].wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
