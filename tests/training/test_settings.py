"""Recipes fill what is left unset; explicit values win."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bedside.training.settings import ALL_LINEAR, PAPER_TARGETS, TrainSettings


def test_the_best_measured_recipe_is_the_default_and_the_paper_is_one_flag_away():
    s = TrainSettings()
    assert (s.recipe, s.rank, s.alpha, s.target_modules, s.lr, s.epochs) == ("bedside", 16, 32, ALL_LINEAR, 1e-3, 3)
    s = TrainSettings(recipe="paper")
    assert (s.rank, s.alpha, s.target_modules, s.lr, s.epochs) == (8, 8, PAPER_TARGETS, 3e-4, 5)
    assert TrainSettings(method="full").lr == 3e-5 and TrainSettings(recipe="paper", method="full").lr == 3e-5


@pytest.mark.parametrize("rule", ["argmax", "f1", "youden", "sensitivity:0.9", "ppv:0.5", "sensitivity:1"])
def test_threshold_rules(rule):
    assert TrainSettings(threshold_rule=rule).threshold_rule == rule


@pytest.mark.parametrize("rule", ["sensitivity", "ppv:1.5", "accuracy", "sensitivity:-0.1"])
def test_bad_threshold_rules_are_refused(rule):
    with pytest.raises(ValidationError, match="threshold_rule"):
        TrainSettings(threshold_rule=rule)


def test_bedside_recipe_and_overrides():
    s = TrainSettings(recipe="bedside")
    assert (s.rank, s.alpha, s.target_modules, s.lr, s.epochs) == (16, 32, ALL_LINEAR, 1e-3, 3)
    s = TrainSettings(recipe="bedside", rank=4, lr=5e-4, epochs=1, target_modules=("query",))
    assert (s.rank, s.alpha, s.target_modules, s.lr, s.epochs) == (4, 32, ("query",), 5e-4, 1)
    assert TrainSettings(recipe="bedside", method="full").lr == 3e-5


def test_unknown_recipe_is_refused():
    with pytest.raises(ValidationError, match="recipe"):
        TrainSettings(recipe="fast")


def test_gradient_clipping_defaults_to_the_trainer_default():
    assert TrainSettings().max_grad_norm == 1.0
    assert TrainSettings(max_grad_norm=None).max_grad_norm is None


def test_batches_are_grouped_by_length_in_the_bedside_recipe_and_shuffled_plainly_in_the_papers():
    assert TrainSettings().group_by_length is True and TrainSettings(recipe="paper").group_by_length is False
    assert TrainSettings(recipe="paper", group_by_length=True).group_by_length is True
    assert TrainSettings(group_by_length=False).group_by_length is False
