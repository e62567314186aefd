"""Flags generated from the settings models: every field settable, unset flags left to the model."""

from __future__ import annotations

import re

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from bedside.adapters.cli_settings import flag_name, settings_flags


def _flags(app: typer.Typer, *args: str) -> set[str]:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0, result.output
    return set(re.findall(r"(--[a-z0-9-]+)", result.output))


@pytest.fixture(scope="module")
def root():
    from bedside.cli import _register

    app = typer.Typer()
    _register(app)
    return app


@pytest.mark.parametrize(
    "command, model",
    [("train", "bedside.training.settings:TrainSettings"), ("serve", "bedside.service.settings:ServiceSettings")],
)
def test_every_settings_field_is_a_flag(root, command, model):
    module, _, name = model.partition(":")
    settings = getattr(__import__(module, fromlist=[name]), name)
    missing = {flag_name(field) for field in settings.model_fields} - _flags(root, command)
    assert not missing, f"bedside {command} lacks {sorted(missing)}"


class Demo(BaseModel):
    rank: int = Field(8, ge=1, description="LoRA rank")
    targets: tuple[str, ...] = Field(("query", "value"), description="modules")
    clip: float | None = Field(1.0, gt=0, description="clipping")
    fast: bool = Field(False, description="go fast")


def test_given_flags_reach_the_command_and_unset_ones_do_not():
    seen = []
    app = typer.Typer()

    @app.command()
    @settings_flags(Demo)
    def run(name: str = typer.Option("x"), *, overrides: dict) -> None:
        seen.append((name, Demo(**overrides), overrides))

    runner = CliRunner()
    assert runner.invoke(app, []).exit_code == 0
    assert seen[-1][2] == {} and seen[-1][1] == Demo()
    result = runner.invoke(app, ["--name", "y", "--rank", "4", "--targets", "key, dense", "--clip", "none", "--fast"])
    assert result.exit_code == 0, result.output
    name, demo, overrides = seen[-1]
    assert name == "y" and overrides == {"rank": 4, "targets": ("key", "dense"), "clip": None, "fast": True}
    assert demo.clip is None and demo.targets == ("key", "dense")
    assert runner.invoke(app, ["--rank", "many"]).exit_code != 0  # typed flags are checked by the parser


def test_a_command_may_not_redeclare_a_settings_field():
    with pytest.raises(TypeError, match="rank"):

        @settings_flags(Demo)
        def bad(rank: int = 1, *, overrides: dict) -> None: ...
