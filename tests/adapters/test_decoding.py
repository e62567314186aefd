from bedside.adapters.decoding import bio_entities
from bedside.adapters.encoding import split_words


def test_bio_entities_have_character_offsets():
    text = "Chest pain , treated with IV lasix ."
    spans = [s for _, s in split_words(text)]
    tags = ["B-problem", "I-problem", "O", "O", "O", "B-treatment", "I-treatment", "O"]
    entities = bio_entities(text, spans, tags, [0.9] * len(tags))
    assert [(e.text, e.type, e.start, e.end) for e in entities] == [
        ("Chest pain", "problem", 0, 10),
        ("IV lasix", "treatment", 26, 34),
    ]


def test_stray_inside_tag_starts_an_entity_and_type_change_splits():
    text = "a b c"
    spans = [s for _, s in split_words(text)]
    entities = bio_entities(text, spans, ["I-test", "I-problem", "I-problem"], [1.0, 0.5, 0.7])
    assert [(e.text, e.type) for e in entities] == [("a", "test"), ("b c", "problem")]
    assert abs(entities[1].score - 0.6) < 1e-9
