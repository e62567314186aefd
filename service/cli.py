"""``bedside serve``, ``bedside demo`` and ``bedside adapters upload``."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from bedside.adapters.cli_settings import settings_flags

from .examples import NOTE
from .server import serve_command, server_env, start_server, stop_server, wait_ready
from .settings import ServiceSettings

if TYPE_CHECKING:
    from .client import BedsideClient

console = Console(stderr=True)

DEMO_TASKS = {
    # task: (data folder in the synthetic set, training flags measured to learn it on CPU in minutes)
    "mortality": ("mortality", ["--max-length", "128", "--epochs", "3", "--lr", "1e-3"]),
    "length_of_stay": ("length_of_stay", ["--max-length", "128", "--epochs", "3", "--lr", "1e-3"]),
    "ner": ("ner", ["--epochs", "6", "--batch-size", "8", "--lr", "1e-3"]),
    "relations": ("relations", ["--epochs", "6", "--batch-size", "8", "--lr", "1e-3"]),
}


@settings_flags(ServiceSettings)
def serve(*, overrides: dict) -> None:
    """Serve every task's active adapter from the store (BentoML; Ctrl+C stops).

    Every setting is a flag here and a BEDSIDE_* variable for the server (docs/configuration.md);
    a flag wins over the environment."""
    from pydantic import ValidationError

    try:
        settings = ServiceSettings(**overrides)  # the flags checked together with the environment
    except ValidationError as exc:
        console.print(f"[red]error:[/red] {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None
    if not _loopback(settings.host) and not settings.tokens("predict") and not settings.allow_unauthenticated:
        console.print(
            f"[red]error:[/red] --host {settings.host} would serve /predict to the network without a token: set "
            "BEDSIDE_PREDICT_TOKENS (or a tokens file), or pass --allow-unauthenticated"
        )
        raise typer.Exit(2)
    command = serve_command(settings.port, settings.host, settings.keepalive_timeout_s)
    os.execve(command[0], command, server_env(**overrides))


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bedside(*args: str) -> None:
    """Run another bedside command in its own process (serving never imports training)."""
    subprocess.run([sys.executable, "-m", "bedside.cli", *args], check=True)


def demo(
    port: int = typer.Option(3000),
    store: Optional[Path] = typer.Option(None, help="adapter store (else $BEDSIDE_STORE, else the default)"),
    workdir: Optional[Path] = typer.Option(None, help="where demo data and runs go (default: ~/.cache/bedside/demo)"),
    check: bool = typer.Option(False, "--check", help="run the printed examples, then stop the server"),
) -> None:
    """Train the four demo adapters if the store has none active, then serve them."""
    from bedside.adapters.registry import Registry, resolve_store

    store = resolve_store(store)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    workdir = workdir or cache / "bedside" / "demo"
    registry = Registry(store)
    missing = [task for task in DEMO_TASKS if registry.active(task) is None]
    if missing:
        console.print(
            f"[bold]No active adapters for {', '.join(missing)}: training demo adapters "
            f"on synthetic notes (CPU: a few minutes).[/bold]"
        )
        data = workdir / "synth"
        if not (data / "mortality").is_dir():
            _bedside("data", "synth", "--out", str(data), "--seed", "0", "--size", "600")
        for task in missing:
            folder, flags = DEMO_TASKS[task]
            out = workdir / "runs" / task
            if not (out / "artifact" / "manifest.json").is_file():  # a finished run is reused
                console.print(f"[bold]training {task}[/bold]")
                _bedside(
                    "train",
                    "--task",
                    task,
                    "--data",
                    str(data / folder),
                    "--out",
                    str(out),
                    "--name",
                    f"{task}-demo",
                    *flags,
                )
            _bedside(
                "adapters",
                "push",
                str(out / "artifact"),
                "--task",
                task,
                "--activate",
                "--store",
                str(store),
                "--base",
                "embedded",
                "--actor",
                "demo",
            )
    url = f"http://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)  # training, which would create it, is skipped for a full store
    process = start_server(port, server_env(store=store), log_file=workdir / "server.log")
    # A service manager or a test harness stops the demo with SIGTERM: stop the server it started
    # too (its own process group), as Ctrl+C does, instead of leaving it running on the port.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        console.print(f"starting the service on {url} (log: {workdir / 'server.log'}) ...")
        wait_ready(url, process)
        examples = curl_examples(url, workdir)
        console.print("\n[bold green]bedside is serving all four tasks.[/bold green] Try:\n")
        for command in examples:
            print(command + "\n")
        show_whole_note(url)
        if check:
            for command in examples:
                result = subprocess.run(shlex.split(command), capture_output=True, text=True, check=True)
                answer = json.loads(result.stdout)
                if "adapter" not in answer and "adapters" not in answer:
                    raise RuntimeError(f"unexpected answer: {result.stdout[:200]}")
                console.print(f"ok: {shlex.split(command)[-1][:60]}")
            return
        console.print("Ctrl+C stops the service.")
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(process)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def curl_examples(url: str, folder: Path) -> list[str]:
    """The demo's curl commands: a snippet per task, then a whole note from a file in ``folder``."""
    bodies = [
        {
            "task": "mortality",
            "texts": ["78 year old man admitted with septic shock, intubated, on norepinephrine. Lactate 6.1."],
        },
        {"task": "length_of_stay", "texts": ["Elective knee replacement, uncomplicated, lives with family."]},
        {"task": "ner", "texts": ["Chest x-ray showed pneumonia and IV vancomycin was started."]},
        {
            "task": "relations",
            "items": [
                {
                    "text": "IV vancomycin was started for pneumonia .",
                    "head": {"start": 0, "end": 13},
                    "tail": {"start": 30, "end": 39},
                }
            ],
        },
    ]
    out = [f"curl -s -X POST {url}/predict -H 'Content-Type: application/json' -d '{json.dumps(b)}'" for b in bodies]
    extract = {"text": "CT scan showed a pulmonary embolism and heparin was started for it."}
    out.append(f"curl -s -X POST {url}/extract -H 'Content-Type: application/json' -d '{json.dumps(extract)}'")
    note = folder / "whole-note.json"  # a whole admission note: sections, line breaks, ~600 tokens
    note.write_text(json.dumps({"text": NOTE}))
    body = shlex.quote(f"@{note}")
    out.append(f"curl -s -X POST {url}/extract -H 'Content-Type: application/json' --data-binary {body}")
    return out


def show_whole_note(url: str, shown: int = 8) -> None:
    """Send the example whole note to /extract and print what came back, offsets included."""
    from .client import BedsideClient

    with BedsideClient(url) as client:
        answer = client.extract(NOTE)
    console.print(
        f"[bold]A whole note[/bold] ({len(NOTE.split())} words, {NOTE.count(chr(10))} lines) through /extract: "
        f"read in {answer.note.windows} windows, {len(answer.entities)} entities, "
        f"{len(answer.relations)} relations among {answer.note.pairs} candidate pairs "
        f"(ner {answer.adapters[0].version})"
    )
    for entity in answer.entities[:shown]:
        console.print(f"  [{entity.start}:{entity.end}] {entity.type:<9} {entity.text!r}", markup=False)
    if len(answer.entities) > shown:
        console.print(f"  ... and {len(answer.entities) - shown} more")


def upload(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="adapter artifact folder"),
    url: str = typer.Option(..., help="service URL, e.g. http://bedside.internal:3000"),
    task: Optional[str] = typer.Option(None, help="task (default: the manifest's)"),
    activate: bool = typer.Option(False, "--activate", help="activate after it is stored"),
    token_env: str = typer.Option("BEDSIDE_ADMIN_TOKEN", help="environment variable holding the admin token"),
) -> None:
    """Upload an artifact to a running service through its admin API."""
    if task is None:
        task = json.loads((folder / "manifest.json").read_text())["task"]["name"]
    with _admin_client(url, token_env) as client:
        answer = client.upload(folder, task, activate=activate)
    version = answer["version"]
    console.print(
        f"stored {task} {version['version']} ({version['sha256'][:12]})" + (" and activated it" if activate else "")
    )
    check = answer.get("check")
    if check and check["ok"]:
        console.print("it answered its examples on the served model and is loaded: activating it only flips")
    elif check:
        console.print(
            f"[yellow]warning:[/yellow] it failed its check on the served model, so activating it "
            f"will be refused: {check.get('reason')}"
        )


@contextmanager
def _admin_client(url: str, token_env: str) -> Iterator[BedsideClient]:
    """A client with the admin token from ``token_env``; its errors end the command (exit 1)."""
    from .client import BedsideClient, BedsideError

    token = os.environ.get(token_env)
    if not token:
        console.print(f"[red]error:[/red] set {token_env} to an admin token")
        raise typer.Exit(2)
    try:
        with BedsideClient(url, token=token) as client:
            yield client
    except BedsideError as exc:
        console.print(f"[red]error [{exc.code}]:[/red] {exc.message}")
        raise typer.Exit(1) from None


def shadow_report(
    task: str = typer.Argument(..., help="the task whose shadow is running"),
    url: str = typer.Option(..., help="service URL, e.g. http://bedside.internal:3000"),
    token_env: str = typer.Option("BEDSIDE_ADMIN_TOKEN", help="environment variable holding the admin token"),
) -> None:
    """The live comparison of a task's shadow version with its active one, from a running service."""
    with _admin_client(url, token_env) as client:
        report = client.shadow_report(task)
    console.print(f"{task}: active {report['active']}, rollout {report['rollout'] or 'none'}")
    for pair in report["pairs"]:
        console.print(render_pair(pair), markup=False)


def render_pair(pair: dict) -> str:
    """One shadow pair's figures in a line (None: nothing of that kind compared yet)."""

    def ratio(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    requests = ", ".join(f"{k} {v}" for k, v in pair["requests"].items())
    return (
        f"  {pair['active']} vs {pair['candidate']}: {requests}; label agreement {ratio(pair['label_agreement'])}, "
        f"entity agreement F1 {ratio(pair['entity_agreement_f1'])}, "
        f"mean |dp| {ratio(pair['mean_abs_probability_difference'])}"
    )
