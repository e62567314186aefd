"""Has a stored version drifted from what was pushed? (re-hash against its record)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .fsio import artifact_sha256, file_sha256


def drift(folder: Path, record: dict[str, Any]) -> list[str]:
    """Problems with ``folder`` against the file hashes recorded at push (empty: intact)."""
    expected: dict[str, str] = record.get("files") or {}
    present = {p.name for p in folder.iterdir()}
    problems = [f"unexpected file {n!r}" for n in sorted(present - set(expected))]
    problems += [f"missing file {n!r}" for n in sorted(set(expected) - present)]
    for name in sorted(present & set(expected)):
        path = folder / name
        if path.is_symlink() or not path.is_file() or file_sha256(path) != expected[name]:
            problems.append(f"{name} does not match its sha256")
        elif path.stat().st_mode & 0o222:
            problems.append(f"{name} is writable (versions are read-only)")
    if artifact_sha256(expected) != record.get("sha256"):
        problems.append("the version sha256 does not match its files")
    return problems


def folder_sha256(folder: Path) -> str:
    """The version identity (as recorded at push) of the files in ``folder``."""
    return artifact_sha256({p.name: file_sha256(p) for p in Path(folder).iterdir() if p.is_file()})
