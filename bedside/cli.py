"""The ``bedside`` command. Packages contribute sub-commands through the
``bedside.commands`` entry-point group, so this root imports none of them."""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

app = typer.Typer(
    name="bedside",
    help="Clinical NLP on one shared compact encoder: train adapters, manage them, serve them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print request data or weights in tracebacks
)


def _register(root: typer.Typer) -> None:
    """Groups and commands first, then ``group.command`` entries into their groups
    (so ``service`` can add ``adapters upload`` without ``adapters`` importing it)."""
    groups: dict[str, typer.Typer] = {}
    nested = []
    for ep in sorted(entry_points(group="bedside.commands"), key=lambda e: e.name):
        if "." in ep.name:
            nested.append(ep)
            continue
        target = ep.load()
        if isinstance(target, typer.Typer):
            root.add_typer(target, name=ep.name)
            groups[ep.name] = target
        else:
            root.command(ep.name)(target)
    for ep in nested:
        group, command = ep.name.split(".", 1)
        groups[group].command(command)(ep.load())


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    _register(app)
    app()


if __name__ == "__main__":
    main()
