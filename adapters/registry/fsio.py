"""Small filesystem helpers: atomic writes, hashes, read-only marking, forced removal."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

_BUFFER = 1 << 20


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write-temp + fsync + os.replace: readers see the old bytes or the new, never a torn file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_sha256(files: dict[str, str]) -> str:
    """A version's identity: sha256 over the sorted (file name, file sha256) pairs."""
    digest = hashlib.sha256()
    for name, sha in sorted(files.items()):
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def make_read_only(folder: Path) -> None:
    for child in folder.iterdir():
        child.chmod(0o444)
    folder.chmod(0o555)


def force_rmtree(path: Path) -> None:
    """Remove a tree even where files and folders were made read-only (for non-root users)."""
    if not path.exists() and not path.is_symlink():
        return
    for root, dirs, _ in os.walk(path):
        for d in [root] + [os.path.join(root, d) for d in dirs]:
            try:
                os.chmod(d, 0o700)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)
