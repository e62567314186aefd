"""Loaders: each format on small hand-written files, and their errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bedside.adapters.examples import PairExample, TextExample, TokenExample
from bedside.adapters.tasks import PRESETS, TaskSpec
from bedside.training.loaders import DataError, DataWarning, few_shot, infer_format, load_dataset, stratified_split

NER = PRESETS["ner"]
RELATIONS = PRESETS["relations"]
MORTALITY = PRESETS["mortality"]
LOS = PRESETS["length_of_stay"]
CDR = TaskSpec(name="cdr", kind="token", labels=("O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"))
GAD = TaskSpec(name="gad", kind="pair", labels=("0", "1"))
TOPIC = TaskSpec(name="topic", kind="sequence", labels=("neoplasms", "digestive", "nervous"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sizes(dataset) -> dict[str, int]:
    return {split: len(examples) for split, examples in dataset.items()}


# --------------------------------------------------------------------------- conll

CONLL_TRAIN = (
    "-DOCSTART-\tO\n\n"
    "Aspirin\tB-Chemical\ncauses\tO\nrenal\tB-Disease\nfailure\tI-Disease\n.\tO\n\n"
    "No NN O\nproblem NN O\n\n"  # space-separated with an extra middle column
)


def conll_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cdr"
    write(folder / "train.tsv", CONLL_TRAIN)
    write(folder / "devel.tsv", "Heparin\tB-Chemical\n")
    write(folder / "test.tsv", "fever\tB-Disease\n\n\n")
    return folder


def test_conll_parses_splits_columns_and_docstart(tmp_path):
    data = load_dataset(conll_folder(tmp_path), CDR, format="conll")
    assert sizes(data) == {"train": 2, "val": 1, "test": 1}
    first, second = data["train"]
    assert first == TokenExample(
        ["Aspirin", "causes", "renal", "failure", "."],
        ["B-Chemical", "O", "B-Disease", "I-Disease", "O"],
        id="train.tsv:3",
    )
    assert second.words == ["No", "problem"] and second.tags == ["O", "O"]
    assert data.notes == []


def test_conll_malformed_line_names_file_and_line(tmp_path):
    folder = tmp_path / "ner"
    write(folder / "train.tsv", "Aspirin\tB-Chemical\ncauses\n")
    with pytest.raises(DataError, match=r"ner/train\.tsv:2: expected 'token<TAB>tag', got 1 field"):
        load_dataset(folder, CDR, format="conll")


def test_conll_unknown_tag_names_label_file_line_and_allowed(tmp_path):
    folder = tmp_path / "ner"
    write(folder / "train.tsv", "a\tO\n\nb\tB-Gene\n")
    with pytest.raises(DataError) as info:
        load_dataset(folder, CDR, format="conll")
    message = str(info.value)
    assert "train.tsv:3:" in message and "'B-Gene'" in message and "'B-Chemical'" in message
    assert info.value.line == 3


def test_conll_empty_split_is_an_error(tmp_path):
    folder = conll_folder(tmp_path)
    write(folder / "devel.tsv", "\n\n-DOCSTART-\tO\n\n")
    with pytest.raises(DataError, match=r"devel\.tsv: no examples in split 'val'"):
        load_dataset(folder, CDR, format="conll")


def test_conll_without_val_makes_val_from_train_and_says_so(tmp_path):
    folder = tmp_path / "ner"
    sentences = "".join(f"w{i}\t{'B-Disease' if i % 2 else 'O'}\n\n" for i in range(20))
    write(folder / "train.tsv", sentences)
    write(folder / "test.tsv", "x\tO\n")
    with pytest.warns(DataWarning, match="no val split"):
        data = load_dataset(folder, CDR)
    assert sizes(data) == {"train": 18, "val": 2, "test": 1}
    assert len(data.notes) == 1 and "seed 42" in data.notes[0]
    assert {e.id for e in data["train"]}.isdisjoint(e.id for e in data["val"])
    assert Counter(e.tags[0] for e in data["val"]) == {"O": 1, "B-Disease": 1}


def test_conll_type_map_renames_entity_types(tmp_path):
    folder = conll_folder(tmp_path)
    data = load_dataset(folder, NER, type_map={"Disease": "problem", "Chemical": "treatment"})
    assert data["train"][0].tags == ["B-treatment", "O", "B-problem", "I-problem", "O"]


# --------------------------------------------------------------------------- mimic-csv

MP_HEADER = "id,text,hospital_expire_flag\n"


def test_mimic_csv_van_aken_names_multiline_text_and_label_index(tmp_path):
    folder = tmp_path / "mimic"
    write(
        folder / "MP_IN_adm_train.csv",
        MP_HEADER + '1,"CHIEF COMPLAINT: chest pain\nHISTORY: ""none""",0\n2,short note,1\n',
    )
    write(folder / "MP_IN_adm_dev.csv", MP_HEADER + "3,note three,1\n")
    write(folder / "MP_IN_adm_test.csv", MP_HEADER + "4,note four,0\n")
    # length-of-stay files in the same folder are told apart by their header
    for split in ("train", "dev", "test"):
        write(folder / f"LOS_WEEKS_adm_{split}.csv", "id,text,los_label\n9,los note,3\n")
    assert infer_format(folder) == "mimic-csv"
    data = load_dataset(folder, MORTALITY)
    assert sizes(data) == {"train": 2, "val": 1, "test": 1}
    assert data["train"][0] == TextExample('CHIEF COMPLAINT: chest pain\nHISTORY: "none"', "survived", id="1")
    assert data["train"][1].label == "died"
    los = load_dataset(folder, LOS, format="mimic-csv")
    assert los["val"][0].label == ">14d"


def test_mimic_csv_bad_label_names_record_start_line(tmp_path):
    folder = tmp_path / "mimic"
    write(folder / "train.csv", MP_HEADER + '1,"two\nlines",0\n2,ok,7\n')
    write(folder / "val.csv", MP_HEADER + "3,x,0\n")
    with pytest.raises(DataError, match=r"train\.csv:4: label index 7 is out of range"):
        load_dataset(folder, MORTALITY)


def test_mimic_csv_wrong_field_count(tmp_path):
    folder = tmp_path / "mimic"
    write(folder / "train.csv", MP_HEADER + "1,a,b,0\n")
    with pytest.raises(DataError, match=r"train\.csv:2: expected 3 fields"):
        load_dataset(folder, MORTALITY)


# --------------------------------------------------------------------------- i2b2

RECORD_TXT = (
    "Admission Date :\nHe received lasix for edema and chest pain .\n\nCT showed a mass causing obstruction .\n"
)
RECORD_CON = (
    'c="lasix" 2:2 2:2||t="treatment"\n'
    'c="edema" 2:4 2:4||t="problem"\n'
    'c="chest pain" 2:6 2:7||t="problem"\n'
    'c="ct" 4:0 4:0||t="test"\n'
    'c="a mass" 4:2 4:3||t="problem"\n'
    'c="obstruction" 4:5 4:5||t="problem"\n'
)
RECORD_REL = (
    'c="lasix" 2:2 2:2||r="TrAP"||c="edema" 2:4 2:4\n'
    'c="ct" 4:0 4:0||r="TeRP"||c="a mass" 4:2 4:3\n'
    'c="obstruction" 4:5 4:5||r="PIP"||c="a mass" 4:2 4:3\n'
)


def i2b2_folder(tmp_path: Path, splits=("train", "test")) -> Path:
    root = tmp_path / "i2b2"
    for split in splits:
        write(root / split / "txt" / "record-1.txt", RECORD_TXT)
        write(root / split / "concept" / "record-1.con", RECORD_CON)
        write(root / split / "rel" / "record-1.rel", RECORD_REL)
    return root


def test_i2b2_token_examples_per_non_empty_line(tmp_path):
    root = i2b2_folder(tmp_path)
    assert infer_format(root) == "i2b2"
    data = load_dataset(root, NER)
    assert sizes(data) == {"train": 3, "test": 3}
    line2 = data["train"][1]
    assert line2.id == "record-1:2"
    assert line2.tags == ["O", "O", "B-treatment", "O", "B-problem", "O", "B-problem", "I-problem", "O"]
    assert data["train"][2].tags == ["B-test", "O", "B-problem", "I-problem", "O", "B-problem", "O"]


def test_i2b2_candidate_pairs_labels_and_directions(tmp_path):
    data = load_dataset(i2b2_folder(tmp_path), RELATIONS)
    pairs = data["train"]
    # line 2: lasix-edema, lasix-chest pain, edema-chest pain; line 4: ct-mass, ct-obstruction,
    # mass-obstruction
    assert len(pairs) == 6

    def show(p: PairExample):
        return (p.text[p.head.start : p.head.end], p.label, p.text[p.tail.start : p.tail.end])

    assert sorted(map(show, pairs)) == sorted(
        [
            ("lasix", "TrAP", "edema"),
            ("lasix", "none", "chest pain"),
            ("edema", "none", "chest pain"),
            ("CT", "TeRP", "a mass"),
            ("CT", "none", "obstruction"),
            ("obstruction", "PIP", "a mass"),  # the .rel order wins over sentence order
        ]
    )
    trap = next(p for p in pairs if p.label == "TrAP")
    assert trap.text == "He received lasix for edema and chest pain ."
    assert trap.meta == {"head_type": "treatment", "tail_type": "problem"}
    pip = next(p for p in pairs if p.label == "PIP")
    assert pip.meta == {"head_type": "problem", "tail_type": "problem"}
    assert Counter(p.label for p in pairs) == {"none": 3, "TrAP": 1, "TeRP": 1, "PIP": 1}


def test_i2b2_without_split_folders_is_all_train(tmp_path):
    root = tmp_path / "flat"
    write(root / "r1.txt", RECORD_TXT)
    write(root / "r1.con", RECORD_CON)
    assert sizes(load_dataset(root, NER, format="i2b2")) == {"train": 3}


def test_i2b2_errors_name_file_and_line(tmp_path):
    root = i2b2_folder(tmp_path, splits=("train",))
    con = root / "train" / "concept" / "record-1.con"
    write(con, RECORD_CON + 'c="x" 2:0||t="problem"\n')
    with pytest.raises(DataError, match=r"record-1\.con:7: expected 'c=\"text\" line:token"):
        load_dataset(root, NER)
    write(con, RECORD_CON + 'c="x" 2:7 2:9||t="problem"\n')
    with pytest.raises(DataError, match=r"record-1\.con:7: tokens 7\.\.9 are outside line 2"):
        load_dataset(root, NER)
    write(con, RECORD_CON)
    rel = root / "train" / "rel" / "record-1.rel"
    write(rel, RECORD_REL + 'c="lasix" 2:2 2:2||r="TrXX"||c="chest pain" 2:6 2:7\n')
    with pytest.raises(DataError, match=r"record-1\.rel:4: unknown label 'TrXX'.*'TrAP'"):
        load_dataset(root, RELATIONS)
    con.unlink()
    with pytest.raises(DataError, match=r"record-1\.txt: no matching record-1\.con"):
        load_dataset(root, NER, format="i2b2")


def test_i2b2_is_not_for_sequence_tasks(tmp_path):
    with pytest.raises(DataError, match="mismatch.*'i2b2'.*sequence task"):
        load_dataset(i2b2_folder(tmp_path), MORTALITY)


# --------------------------------------------------------------------------- re-tsv

GAD_TRAIN = "".join(f"Variant {i} in @GENE$ is linked to @DISEASE$.\t{i % 2}\n" for i in range(20))
GAD_TEST = "index\tsentence\tlabel\n0\t@DISEASE$ is not linked to @GENE$ here.\t0\n"


def test_re_tsv_gad_layout_makes_val_and_finds_masks(tmp_path):
    folder = tmp_path / "gad"
    write(folder / "train.tsv", GAD_TRAIN)
    write(folder / "test.tsv", GAD_TEST)
    assert infer_format(folder) == "re-tsv"
    with pytest.warns(DataWarning, match="stratified 10 %"):
        data = load_dataset(folder, GAD)
    assert sizes(data) == {"train": 18, "val": 2, "test": 1}
    assert Counter(e.label for e in data["val"]) == {"0": 1, "1": 1}
    (test,) = data["test"]
    assert test.id == "0" and test.label == "0"
    assert test.text[test.head.start : test.head.end] == "@DISEASE$"
    assert test.text[test.tail.start : test.tail.end] == "@GENE$"
    assert test.meta == {"head_type": "DISEASE", "tail_type": "GENE"}


def test_re_tsv_needs_two_masks(tmp_path):
    folder = tmp_path / "gad"
    write(folder / "train.tsv", GAD_TRAIN + "Only @GENE$ here.\t1\n")
    with pytest.raises(DataError, match=r"gad/train\.tsv:21: expected two entity masks.*found 1"):
        load_dataset(folder, GAD, format="re-tsv")


def test_re_tsv_labels_are_strings(tmp_path):
    folder = tmp_path / "i2b2_blue"
    write(folder / "train.tsv", "@treatment$ for @problem$\tTrAP\n@test$ shows @problem$\tyes\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: unknown label 'yes'"):
        load_dataset(folder, RELATIONS, format="re-tsv")


# --------------------------------------------------------------------------- generic


def test_csv_single_file_with_label_map_is_split_80_10_10(tmp_path):
    rows = "".join(f'{1 + i % 3},"abstract {i}, about things"\n' for i in range(30))
    file = write(tmp_path / "abstracts.csv", "condition_label,medical_abstract\n" + rows)
    labels = write(tmp_path / "labels.csv", "condition_label,condition_name\n1,neoplasms\n2,digestive\n3,nervous\n")
    assert infer_format(file) == "csv"
    with pytest.warns(DataWarning, match="80/10/10"):
        data = load_dataset(file, TOPIC, label_map=labels)
    assert sizes(data) == {"train": 24, "val": 3, "test": 3}
    for split in ("val", "test"):
        assert Counter(e.label for e in data[split]) == {"neoplasms": 1, "digestive": 1, "nervous": 1}
    assert data["train"][0] == TextExample("abstract 0, about things", "neoplasms", id="abstracts.csv:2")
    with pytest.warns(DataWarning):
        again = load_dataset(file, TOPIC, label_map=labels)
    assert [e.id for e in again["val"]] == [e.id for e in data["val"]]


def test_csv_int_labels_index_and_strings_must_be_labels(tmp_path):
    folder = tmp_path / "topics"
    write(folder / "train.csv", "text,label\na,0\nb,nervous\n")
    write(folder / "val.csv", "text,label\nc,2\n")
    data = load_dataset(folder, TOPIC)
    assert [e.label for e in data["train"]] == ["neoplasms", "nervous"]
    write(folder / "val.csv", "text,label\nc,2\nd,cardio\n")
    with pytest.raises(DataError, match=r"val\.csv:3: unknown label 'cardio'; task 'topic' allows"):
        load_dataset(folder, TOPIC)
    with pytest.raises(DataError, match="mismatch.*'csv'"):
        load_dataset(folder, NER, format="csv")


def test_jsonl_sequence_token_and_pair(tmp_path):
    seq = write(
        tmp_path / "seq" / "train.jsonl",
        json.dumps({"text": "a", "label": 1}) + "\n" + json.dumps({"text": "b", "label": "died"}) + "\n",
    )
    write(tmp_path / "seq" / "val.jsonl", json.dumps({"id": 7, "text": "c", "label": 0}) + "\n")
    assert infer_format(seq.parent) == "jsonl"
    data = load_dataset(seq.parent, MORTALITY)
    assert [e.label for e in data["train"]] == ["died", "died"] and data["val"][0].id == "7"

    tok = write(
        tmp_path / "tok" / "train.jsonl",
        json.dumps({"tokens": ["chest", "pain"], "tags": ["B-problem", "I-problem"]}) + "\n",
    )
    write(tmp_path / "tok" / "val.jsonl", json.dumps({"tokens": ["ok"], "tags": ["O"]}) + "\n")
    assert load_dataset(tok.parent, NER)["train"][0].tags == ["B-problem", "I-problem"]

    pair = {"text": "lasix for edema", "head": [0, 5], "tail": [10, 15], "label": "TrAP"}
    write(tmp_path / "pair" / "train.jsonl", json.dumps(pair) + "\n")
    write(tmp_path / "pair" / "val.jsonl", json.dumps(pair | {"label": "none"}) + "\n")
    example = load_dataset(tmp_path / "pair", RELATIONS)["train"][0]
    assert (example.head.start, example.head.end, example.tail.end) == (0, 5, 15)


def test_jsonl_errors(tmp_path):
    folder = tmp_path / "bad"
    write(folder / "train.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": 0\n')
    with pytest.raises(DataError, match=r"bad/train\.jsonl:2: expected a JSON object"):
        load_dataset(folder, MORTALITY)
    write(folder / "train.jsonl", json.dumps({"text": "ab", "head": [0, 1], "tail": [1, 9], "label": "TrAP"}) + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl:1: span tail \[1, 9\) is outside"):
        load_dataset(folder, RELATIONS)


# --------------------------------------------------------------------------- load_dataset


def test_format_inference_and_refusals(tmp_path):
    conll = write(tmp_path / "one.tsv", "a\tO\nb\tB-Disease\n")
    assert infer_format(conll) == "conll"
    assert infer_format(write(tmp_path / "x.jsonl", "{}\n")) == "jsonl"
    mimic = write(tmp_path / "train.csv", "id,text,los_label\n1,a,0\n")
    assert infer_format(mimic) == "mimic-csv"
    with pytest.raises(DataError, match="cannot infer the format"):
        infer_format(write(tmp_path / "free.tsv", "just some\ttext here\n"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="cannot infer the format"):
        infer_format(tmp_path / "empty_dir")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "missing", NER)
    with pytest.raises(
        DataError,
        match=r"mismatch: format 'conll' \(inferred\) gives token.*"
        r"'mortality' is a sequence task",
    ):
        load_dataset(conll, MORTALITY)
    with pytest.raises(DataError, match="unknown format"):
        load_dataset(conll, NER, format="xml")
    with pytest.raises(DataError, match="does not take option"):
        load_dataset(conll, NER, text_column="x")


def test_folder_without_split_files(tmp_path):
    write(tmp_path / "data" / "notes.tsv", "a\tO\n")
    with pytest.raises(DataError, match="no split files found"):
        load_dataset(tmp_path / "data", NER, format="conll")


# --------------------------------------------------------------------------- sampling


def labelled(n: int, labels: tuple[str, ...]) -> list[TextExample]:
    return [TextExample(f"t{i}", labels[i % len(labels)], id=str(i)) for i in range(n)]


def test_stratified_split_is_proportional_disjoint_and_seeded():
    examples = labelled(100, ("a", "a", "a", "b"))  # 75 a, 25 b
    parts = stratified_split(examples, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=3)
    assert {k: len(v) for k, v in parts.items()} == {"train": 80, "val": 10, "test": 10}
    for part in parts.values():
        counts = Counter(e.label for e in part)
        assert abs(counts["b"] / len(part) - 0.25) <= 1 / len(part) + 1e-9
    ids = [e.id for part in parts.values() for e in part]
    assert sorted(ids) == sorted(e.id for e in examples)
    assert stratified_split(examples, [0.8, 0.1, 0.1], seed=3) == list(parts.values())
    assert stratified_split(examples, [0.8, 0.1, 0.1], seed=4) != list(parts.values())
    with pytest.raises(ValueError):
        stratified_split(examples, [0.5, 0.2])


def test_few_shot_per_label_and_per_entity_type():
    examples = labelled(30, ("a", "b", "c"))
    picked = few_shot(examples, 2, seed=1)
    assert Counter(e.label for e in picked) == {"a": 2, "b": 2, "c": 2}
    assert few_shot(examples, 2, seed=1) == picked
    assert few_shot(labelled(3, ("a", "b", "c")), 5, seed=1) == labelled(3, ("a", "b", "c"))

    tokens = [TokenExample(["x"], ["B-Disease"], id=str(i)) for i in range(5)]
    tokens += [TokenExample(["y", "z"], ["B-Chemical", "B-Disease"], id=f"c{i}") for i in range(5)]
    tokens += [TokenExample(["o"], ["O"], id="o")]
    picked = few_shot(tokens, 2, seed=0)
    chemical = sum("B-Chemical" in e.tags for e in picked)
    disease = sum("B-Disease" in e.tags for e in picked)
    assert chemical == 2 and disease >= 2 and all(e.id != "o" for e in picked)
