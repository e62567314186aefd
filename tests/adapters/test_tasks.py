import json

import pytest
from pydantic import ValidationError

from bedside.adapters.tasks import PRESETS, TaskKind, TaskSpec, load_task_spec, resolve_task


def test_presets_cover_the_four_clinical_tasks():
    assert PRESETS["mortality"].kind is TaskKind.sequence and PRESETS["mortality"].num_labels == 2
    assert PRESETS["length_of_stay"].num_labels == 4
    assert PRESETS["ner"].entity_types == ("problem", "test", "treatment")
    rel = PRESETS["relations"]
    assert rel.kind is TaskKind.pair and rel.num_labels == 9 and rel.negative_label == "none"
    assert set(rel.labels) >= {"TrIP", "TrWP", "TrCP", "TrAP", "TrNAP", "TeRP", "TeCP", "PIP"}


def test_user_task_from_yaml_and_json(tmp_path):
    (tmp_path / "sepsis.yaml").write_text("name: sepsis\nkind: sequence\nlabels: [no, yes]\n")
    assert load_task_spec(tmp_path / "sepsis.yaml").labels == ("no", "yes")
    (tmp_path / "meds.json").write_text(
        json.dumps({"name": "meds", "kind": "token", "labels": ["O", "B-drug", "I-drug"]})
    )
    spec = resolve_task(str(tmp_path / "meds.json"))
    assert spec.entity_types == ("drug",)


@pytest.mark.parametrize(
    "data",
    [
        {"name": "x", "kind": "sequence", "labels": ["a"]},  # one label
        {"name": "x", "kind": "sequence", "labels": ["a", "a"]},  # duplicate
        {"name": "../etc", "kind": "sequence", "labels": ["a", "b"]},  # unsafe name
        {"name": "x", "kind": "token", "labels": ["O", "drug"]},  # not BIO
        {"name": "x", "kind": "regression", "labels": ["a", "b"]},  # unknown kind
        {"name": "x", "kind": "sequence", "labels": ["a", "b"], "extra": 1},
    ],
)
def test_invalid_task_specs_are_refused(data):
    with pytest.raises(ValidationError):
        TaskSpec.model_validate(data)


def test_unknown_label_error_names_the_label():
    with pytest.raises(ValueError, match="'maybe'"):
        PRESETS["mortality"].label_id("maybe")


def test_resolve_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        resolve_task("nonsense")
