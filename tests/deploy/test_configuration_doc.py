"""docs/configuration.md lists every ServiceSettings field, exactly as the model has it."""
from __future__ import annotations

from .settings_table import DOC, END, FALLBACK_MEANINGS, START, doc_table, render_table


def test_settings_table_matches_the_model():
    text = DOC.read_text(encoding="utf-8")
    assert START in text and END in text, "the table markers are missing from docs/configuration.md"
    assert doc_table(text) == render_table().strip(), (
        "docs/configuration.md is out of date with ServiceSettings: run "
        "`.venv/bin/python -m tests.deploy.settings_table --write`")


def test_every_field_is_in_the_table_with_a_meaning():
    from bedside.service.settings import ServiceSettings

    rows = [line for line in doc_table(DOC.read_text(encoding="utf-8")).splitlines()[2:]]
    names = [row.split("|")[1].strip().strip("`") for row in rows]
    assert names == list(ServiceSettings.model_fields)
    for row in rows:
        assert row.rstrip(" |").split("|")[-1].strip(), f"no meaning: {row}"


def test_fallback_meanings_are_only_for_undescribed_fields():
    from bedside.service.settings import ServiceSettings

    fields = ServiceSettings.model_fields
    stale = [name for name in FALLBACK_MEANINGS if name not in fields or fields[name].description]
    assert not stale, f"remove from FALLBACK_MEANINGS (gone or now described in the model): {stale}"


def test_flags_column_names_real_flags():
    from .settings_table import serve_flags

    flags = serve_flags()
    assert {"store", "device"} <= set(flags)
    table = doc_table(DOC.read_text(encoding="utf-8"))
    for name, flag in flags.items():
        assert f"| `{name}` | `BEDSIDE_{name.upper()}` | `{flag}` |" in table
