"""Bring a pushed folder into the store's staging area, safely and with hashes.

Errors are sorted by side: trouble reading the *source* is the artifact's fault
(InvalidArtifact), trouble writing the *store* is the store's (StoreUnavailable).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from .errors import InvalidArtifact, StoreUnavailable, TooLarge
from .validate import Limits, check_file_stat, scan_dir

_BUFFER = 1 << 20


def stage_files(src_dir: Path, dst_dir: Path, limits: Limits) -> dict[str, str]:
    """Copy an artifact folder's allow-listed files into ``dst_dir``; return name -> sha256."""
    names = scan_dir(src_dir, limits)
    return {name: copy_in(Path(src_dir), name, dst_dir, limits) for name in sorted(names)}


class _HashingReader:
    """Reads a source file, hashing as it goes and refusing bytes past the cap."""

    def __init__(self, fd: int, name: str, cap: int) -> None:
        self.fd, self.name, self.cap = fd, name, cap
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, n: int = _BUFFER) -> bytes:
        try:
            chunk = os.read(self.fd, min(n if n > 0 else _BUFFER, _BUFFER))
        except OSError as exc:
            raise InvalidArtifact(f"cannot read {self.name}: {exc.strerror}") from None
        self.size += len(chunk)
        if self.size > self.cap:  # the file grew after it was checked
            raise TooLarge(f"{self.name} is over its {self.cap}-byte cap")
        self.digest.update(chunk)
        return chunk


def copy_in(src_dir: Path, name: str, dst_dir: Path, limits: Limits) -> str:
    """Copy one artifact file into the store's staging; return its sha256.

    Opened with O_NOFOLLOW|O_NONBLOCK and checked again on the open descriptor, so a
    file swapped for a symlink, FIFO or hard link after the folder scan is still refused.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(src_dir / name, flags)
    except OSError as exc:
        raise InvalidArtifact(f"cannot open {name}: {exc.strerror} (symbolic links are refused)") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            os.set_blocking(fd, True)
        check_file_stat(name, st, limits)
        reader = _HashingReader(fd, name, limits.cap(name))
        try:
            with open(dst_dir / name, "xb") as out:
                shutil.copyfileobj(reader, out, _BUFFER)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise StoreUnavailable.from_os_error(exc, f"cannot store {name}") from None
        return reader.digest.hexdigest()
    finally:
        os.close(fd)
