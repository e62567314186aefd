"""Synthetic data generator: formats, determinism, consistency and learnability."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bedside.adapters.tasks import PRESETS
from bedside.training.cli_data import app
from bedside.training.synth import SPLITS, write_synthetic

CON = re.compile(r'^c="([^"]+)" (\d+):(\d+) (\d+):(\d+)\|\|t="(problem|test|treatment)"$')
REL = re.compile(r'^c="([^"]+)" (\d+):(\d+) (\d+):(\d+)\|\|r="(\w+)"\|\|c="([^"]+)" (\d+):(\d+) (\d+):(\d+)$')
MASK = re.compile(r"@(problem|test|treatment)\$")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, seed=7, size=300)
    return out


def _records(root: Path, split: str) -> list[str]:
    names = [p.stem for p in (root / "i2b2" / split / "txt").glob("*.txt")]
    return sorted(names, key=lambda name: int(name.split("-")[1]))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _conll(path: Path) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line:
            token, tag = line.split("\t")
            current.append((token, tag))
        elif current:
            sentences.append(current)
            current = []
    assert not current, "file must end with a blank line"
    return sentences


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_all_formats_and_splits_written(data: Path) -> None:
    paths = write_synthetic(data / "again", seed=7, size=30)
    assert sorted(paths) == sorted(["mortality", "length_of_stay", "i2b2", "ner", "relations"])
    for split in SPLITS:
        mortality = _read_csv(data / "mortality" / f"{split}.csv")
        los = _read_csv(data / "length_of_stay" / f"{split}.csv")
        assert mortality and list(mortality[0]) == ["id", "text", "hospital_expire_flag"]
        assert list(los[0]) == ["id", "text", "los_label"]
        assert [r["id"] for r in mortality] == [r["id"] for r in los]
        assert [r["text"] for r in mortality] == [r["text"] for r in los]
        assert {r["hospital_expire_flag"] for r in mortality} <= {"0", "1"}
        assert {r["los_label"] for r in los} <= {"0", "1", "2", "3"}
        assert all(40 <= len(r["text"].split()) <= 260 for r in mortality)
        names = _records(data, split)
        assert names
        for name in names:
            for sub, suffix in (("txt", "txt"), ("concept", "con"), ("rel", "rel")):
                assert (data / "i2b2" / split / sub / f"{name}.{suffix}").is_file()
        assert _conll(data / "ner" / f"{split}.tsv")
        lines = (data / "relations" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        assert lines
        labels = set(PRESETS["relations"].labels)
        for line in lines:
            sentence, label = line.split("\t")
            assert label in labels
            masks = MASK.findall(sentence)
            assert len(masks) == 2 and "problem" in masks
            if label == "PIP":
                assert masks == ["problem", "problem"]
    n_notes = sum(len(_read_csv(data / "mortality" / f"{s}.csv")) for s in SPLITS)
    assert n_notes == 300
    for split in SPLITS:  # the smaller run has every split too
        assert _read_csv(paths["mortality"] / f"{split}.csv")
        assert _records(data / "again", split)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((first, 3), (second, 3), (other, 4)):
        write_synthetic(out, seed=seed, size=60)
    first_bytes = _all_bytes(first)
    assert len(first_bytes) > 10
    assert first_bytes == _all_bytes(second)
    assert first_bytes != _all_bytes(other)


def test_i2b2_offsets_point_at_tokens(data: Path) -> None:
    n_concepts = n_relations = 0
    for split in SPLITS:
        for name in _records(data, split):
            root = data / "i2b2" / split
            lines = (root / "txt" / f"{name}.txt").read_text(encoding="utf-8").split("\n")
            assert lines[-1] == "" and all(lines[:-1])
            tokens = [line.split(" ") for line in lines[:-1]]

            def check(text: str, line: str, start: str, line_end: str, end: str) -> tuple[int, int, int]:
                assert line == line_end
                row, s, e = int(line) - 1, int(start), int(end)
                assert 0 <= s <= e < len(tokens[row])
                assert text == " ".join(tokens[row][s : e + 1]).lower()
                return row, s, e

            types = {}
            for con in (root / "concept" / f"{name}.con").read_text(encoding="utf-8").splitlines():
                m = CON.match(con)
                assert m, con
                types[check(*m.groups()[:5])] = m.group(6)
                n_concepts += 1
            for rel in (root / "rel" / f"{name}.rel").read_text(encoding="utf-8").splitlines():
                m = REL.match(rel)
                assert m, rel
                first, label, second = check(*m.groups()[:5]), m.group(6), check(*m.groups()[6:])
                assert first[0] == second[0]  # same sentence
                expected = {"Tr": "treatment", "Te": "test", "PI": "problem"}[label[:2]]
                assert (types[first], types[second]) == (expected, "problem")
                n_relations += 1
    assert n_concepts > 100 and n_relations > 50


def test_conll_and_relations_agree_with_i2b2(data: Path) -> None:
    for split in SPLITS:
        expected_sentences, n_rel = [], 0
        for name in _records(data, split):
            root = data / "i2b2" / split
            lines = (root / "txt" / f"{name}.txt").read_text(encoding="utf-8").splitlines()
            tags = [["O"] * len(line.split(" ")) for line in lines]
            for con in (root / "concept" / f"{name}.con").read_text(encoding="utf-8").splitlines():
                _, line, start, _, end, kind = CON.match(con).groups()
                row, s, e = int(line) - 1, int(start), int(end)
                tags[row][s] = f"B-{kind}"
                for i in range(s + 1, e + 1):
                    tags[row][i] = f"I-{kind}"
            expected_sentences += [list(zip(line.split(" "), t)) for line, t in zip(lines, tags)]
            n_rel += len((root / "rel" / f"{name}.rel").read_text(encoding="utf-8").splitlines())
        assert _conll(data / "ner" / f"{split}.tsv") == expected_sentences
        labels = [
            line.split("\t")[1]
            for line in (data / "relations" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        ]
        assert len(labels) - labels.count("none") == n_rel
    all_tags = {tag for s in SPLITS for sent in _conll(data / "ner" / f"{s}.tsv") for _, tag in sent}
    assert all_tags == set(PRESETS["ner"].labels)


def test_mortality_is_learnable_by_bag_of_words(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    write_synthetic(tmp_path, seed=0, size=1500)
    train = _read_csv(tmp_path / "mortality" / "train.csv")
    test = _read_csv(tmp_path / "mortality" / "test.csv")
    y_train = np.array([int(r["hospital_expire_flag"]) for r in train])
    y_test = np.array([int(r["hospital_expire_flag"]) for r in test])
    all_labels = np.concatenate([y_train, y_test])
    assert 0.08 <= all_labels.mean() <= 0.2

    vectorizer = CountVectorizer()
    x_train = vectorizer.fit_transform([r["text"] for r in train])
    x_test = vectorizer.transform([r["text"] for r in test])

    def auroc(labels: np.ndarray) -> float:
        model = LogisticRegression(max_iter=2000, C=0.3).fit(x_train, labels)
        return roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])

    assert auroc(y_train) >= 0.75
    assert auroc(np.random.default_rng(0).permutation(y_train)) < 0.65

    los = Counter(r["los_label"] for r in _read_csv(tmp_path / "length_of_stay" / "train.csv"))
    assert all(los[band] >= 0.05 * len(train) for band in "0123")


def test_cli_synth_prints_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["synth", "--out", str(tmp_path), "--seed", "1", "--size", "40"])
    assert result.exit_code == 0, result.output
    assert "mortality" in result.output and "relations" in result.output
    assert (tmp_path / "ner" / "test.tsv").is_file()
