"""The docs name tests (docs/reliability.md maps every RELIABILITY.md row and probe finding to
them, docs/security.md cites them): each name must be a test or test module that exists, so the
maps cannot drift from the suite."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"\btest_[a-z0-9_]*[a-z0-9]\b(?![A-Z*])")  # not a pattern such as test_rNN_*


def known_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.add(path.stem)
        names |= set(re.findall(r"^\s*(?:async )?def (test_[a-z0-9_]+)", path.read_text(), re.M))
    return names


def test_every_test_the_docs_name_exists():
    known = known_names()
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = sorted(
        f"{doc.relative_to(ROOT)}: {name}"
        for doc in docs
        for name in NAME.findall(doc.read_text())
        if name not in known
    )
    assert not missing, missing
