"""``bedside adapters ...``: the adapter registry from the command line.

Every command takes ``--store`` (default: ``$BEDSIDE_STORE``, else
``$XDG_DATA_HOME/bedside/store`` or ``~/.local/share/bedside/store``) and ``--actor``
(default ``$USER@hostname``) for the audit log. Errors print one line
``error [code]: message`` and exit 1; no tracebacks.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .registry import Registry, RegistryError, default_actor, resolve_store

app = typer.Typer(
    help="Adapter registry: push, activate, roll back and verify adapter versions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

STORE = typer.Option(None, "--store", help="Store folder (default: $BEDSIDE_STORE, else ~/.local/share/bedside/store).")
ACTOR = typer.Option(None, "--actor", help="Who acts, for the audit log (default: $USER@hostname).")
BASE = typer.Option(
    None,
    "--base",
    help="Served backbone (embedded, embedded:layers=K, a folder): "
    "enables shape checks against it and the smoke prediction.",
)


def _console() -> Console:
    # Piped output gets a wide table instead of rich's 80-column default.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=160) if wide else Console()


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    from .backbones import BackboneError

    try:
        yield
    except RegistryError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except BackboneError as exc:
        typer.echo(f"error [base_unavailable]: {exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # a bug or a hand-edited store: still one line, never a traceback
        typer.echo(f"error [internal_error]: {type(exc).__name__}: {str(exc)[:300]}", err=True)
        raise typer.Exit(1) from None


def _open(store: Optional[Path], base: Optional[str] = None) -> Registry:
    backbone = None
    if base:
        from .backbones import load_backbone

        backbone = load_backbone(base)
    return Registry(resolve_store(store), backbone=backbone)


def _actor(actor: Optional[str]) -> str:
    return actor or default_actor()


@app.command("push")
def push(
    folder: Path = typer.Argument(..., help="Artifact folder (not an archive)."),
    task: Optional[str] = typer.Option(None, "--task", help="Registry task (default: the manifest's task)."),
    activate: bool = typer.Option(False, "--activate", help="Activate the new version after its smoke test."),
    store: Optional[Path] = STORE,
    actor: Optional[str] = ACTOR,
    base: Optional[str] = BASE,
) -> None:
    """Validate an artifact folder and store it as the task's next version."""
    with _errors():
        info = _open(store, base).push(folder, task=task, actor=_actor(actor), activate=activate)
    state = " (active)" if info.active else ""
    typer.echo(f"pushed {info.task} {info.version}{state} sha256:{info.sha256[:12]}")


@app.command("list")
def list_versions(
    task: Optional[str] = typer.Argument(None, help="Only this task."),
    store: Optional[Path] = STORE,
    actor: Optional[str] = ACTOR,
) -> None:
    """All stored versions: task, version, active, method, primary metric, sha256, created."""
    with _errors():
        registry = _open(store)
        infos = registry.list(task)
        rollouts = {t: registry.rollout(t) for t in {i.task for i in infos}}
    if not infos:
        typer.echo("no adapter versions stored")
        return
    table = Table("task", "version", "active", "method", "metric", "sha256", "created")
    for i in infos:
        metric = i.primary_metric()
        rollout = rollouts.get(i.task)
        role = "*" if i.active else ""
        if rollout is not None and rollout.version == i.version:
            role = "shadow" if rollout.mode == "shadow" else f"canary {rollout.percent:g}%"
        table.add_row(
            i.task,
            i.version,
            role,
            i.method,
            f"{metric[0]}={metric[1]:.4f}" if metric else "-",
            i.sha256[:12],
            i.created_at.strftime("%Y-%m-%d %H:%M") if i.created_at else "-",
        )
    _console().print(table)


@app.command("show")
def show(
    task: str = typer.Argument(...),
    version: Optional[str] = typer.Argument(None, help="Default: the active one."),
    store: Optional[Path] = STORE,
    actor: Optional[str] = ACTOR,
) -> None:
    """One version's record: hashes, manifest summary, where its files are."""
    with _errors():
        i = _open(store).show(task, version)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(i.metrics.items()) if v is not None) or "-"
    lines = [
        f"task:      {i.task} ({i.task_kind}; labels {', '.join(i.labels)})",
        f"version:   {i.version}{' (active)' if i.active else ''}",
        f"name:      {i.name}",
        f"method:    {i.method}",
        f"metrics:   {metrics}",
        f"servable:  {'yes' if i.servable else 'no: ' + str(i.not_servable_reason)}",
        f"base:      {i.base_name} ({i.base_fingerprint[:19]}…)",
        f"sha256:    {i.sha256}",
        f"created:   {i.created_at}",
        f"pushed:    {i.pushed_at} by {i.pushed_by}",
        f"path:      {i.path}",
    ] + [f"  {name:<28} {sha[:12]}" for name, sha in sorted(i.files.items())]
    typer.echo("\n".join(lines))


@app.command("activate")
def activate(
    task: str = typer.Argument(...),
    version: str = typer.Argument(...),
    store: Optional[Path] = STORE,
    actor: Optional[str] = ACTOR,
    base: Optional[str] = BASE,
    canary: Optional[float] = typer.Option(
        None,
        "--canary",
        min=0,
        max=100,
        help="Let the version answer this percentage of the task's requests beside the active one "
        "(stable per X-Request-ID); `promote` finishes the move, `abort` ends it.",
    ),
) -> None:
    """Smoke-test a version and make it the task's active one (or its canary).

    Without --base there is no base to predict with: only the version's hashes are checked."""
    with _errors():
        registry = _open(store, base)
        if canary is not None:
            rollout = registry.canary(task, version, canary, _actor(actor))
            typer.echo(f"canary {task} {rollout.version}: {rollout.percent:g}% of requests")
            return
        info = registry.activate(task, version, _actor(actor))
    typer.echo(f"activated {info.task} {info.version} sha256:{info.sha256[:12]}")


@app.command("shadow")
def shadow(
    task: str = typer.Argument(...),
    version: str = typer.Argument(..., help="The candidate: runs on every request, answers none."),
    store: Optional[Path] = STORE,
    actor: Optional[str] = ACTOR,
    base: Optional[str] = BASE,
) -> None:
    """Run a candidate version beside the active one on every request of the task; only the active
    version answers. Servers report the agreement at GET /admin/adapters/TASK/shadow."""
    with _errors():
        rollout = _open(store, base).shadow(task, version, _actor(actor))
    typer.echo(f"shadow {task} {rollout.version}: compared on every request, answers none")


@app.command("promote")
def promote(task: str = typer.Argument(...), store: Optional[Path] = STORE, actor: Optional[str] = ACTOR) -> None:
    """Make the task's shadow or canary candidate its active version."""
    with _errors():
        info = _open(store).promote(task, _actor(actor))
    typer.echo(f"promoted {info.task} {info.version} sha256:{info.sha256[:12]}")


@app.command("abort")
def abort(task: str = typer.Argument(...), store: Optional[Path] = STORE, actor: Optional[str] = ACTOR) -> None:
    """End the task's shadow or canary: the active version answers every request again."""
    with _errors():
        rollout = _open(store).abort(task, _actor(actor))
    typer.echo(f"aborted the {rollout.mode} of {task} {rollout.version}")


@app.command("rollback")
def rollback(task: str = typer.Argument(...), store: Optional[Path] = STORE, actor: Optional[str] = ACTOR) -> None:
    """Re-activate the task's previous active version."""
    with _errors():
        info = _open(store).rollback(task, _actor(actor))
    typer.echo(f"rolled back {info.task} to {info.version} sha256:{info.sha256[:12]}")


@app.command("delete")
def delete(
    task: str = typer.Argument(...),
    version: str = typer.Argument(..., help="A version that is not active."),
    store: Optional[Path] = STORE,
    actor: Optional[str] = ACTOR,
) -> None:
    """Delete a version that is not active (its number is never reused)."""
    with _errors():
        _open(store).delete(task, version, _actor(actor))
    typer.echo(f"deleted {task} {version}")


@app.command("verify")
def verify(store: Optional[Path] = STORE, actor: Optional[str] = ACTOR) -> None:
    """Re-hash every stored file; exit 1 when anything drifted."""
    with _errors():
        registry = _open(store)
        problems = registry.verify()
        count = len(registry.list())
    for problem in problems:
        typer.echo(f"drift: {problem}", err=True)
    if problems:
        typer.echo(f"error [drift]: {len(problems)} problem(s) in {count} version(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {count} version(s) verified")
