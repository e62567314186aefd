"""The local-filesystem store (also a shared volume for several replicas).

```
STORE/
  audit.jsonl                        append-only JSON lines
  .staging/.lock                     pushes hold it shared; a cleaner that gets it
  .staging/<random>/                 exclusively knows every staging folder is dead
  tasks/<task>/.lock                 flock: numbering, pointer changes, deletes
  tasks/<task>/counter               last version number handed out (never reused)
  tasks/<task>/active.json           {"active": "v3", "previous": "v2", ...}
  tasks/<task>/versions/v3/record.json   hashes + manifest summary, written at push
  tasks/<task>/versions/v3/artifact/     the artifact files, read-only
```

A version appears by one ``os.rename`` of a complete staging folder, so a crash
mid-push leaves nothing half-visible; pointers change by write-temp + fsync +
``os.replace``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..tasks import TASK_NAME_PATTERN
from .backend import StoreBackend
from .errors import InvalidArtifact, NotFound, StoreUnavailable
from .fsio import atomic_write, force_rmtree, fsync_dir, make_read_only
from .models import VERSION_PATTERN, check_task_name, check_version_name

ARTIFACT_DIR = "artifact"
RECORD = "record.json"
POINTER = "active.json"
STALE_AFTER_S = 10 * 60  # staging older than this goes even while other pushes run


@contextlib.contextmanager
def store_io(doing: str) -> Iterator[None]:
    """Turn OSErrors from writing the store into StoreUnavailable (disk full, read-only, ...)."""
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable.from_os_error(exc, doing) from None


def _flock(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


class LocalStore(StoreBackend):
    def __init__(self, root: str | Path, stale_after_s: float = STALE_AFTER_S) -> None:
        self.root = Path(root).expanduser().absolute()
        self.stale_after_s = stale_after_s

    # -- paths ------------------------------------------------------------------
    @property
    def _staging_root(self) -> Path:
        return self.root / ".staging"

    def _task_dir(self, task: str) -> Path:
        return self.root / "tasks" / check_task_name(task)

    def _version_dir(self, task: str, version: str) -> Path:
        return self._task_dir(task) / "versions" / check_version_name(version)

    # -- staging and publishing ---------------------------------------------------
    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """Yield ``.staging/push-<random>/artifact`` to fill; :meth:`commit` publishes its parent."""
        with store_io("cannot create a staging folder"):
            self._staging_root.mkdir(parents=True, exist_ok=True)
            lock = _flock(self._staging_root / ".lock", fcntl.LOCK_SH)
        path = None
        try:
            with store_io("cannot create a staging folder"):
                path = Path(tempfile.mkdtemp(prefix="push-", dir=self._staging_root))
                (path / ARTIFACT_DIR).mkdir()
            yield path / ARTIFACT_DIR
        finally:
            if path is not None:
                force_rmtree(path)  # gone already when committed
            os.close(lock)

    def commit(self, task: str, staged: Path, record: dict[str, Any]) -> str:
        versions = self._task_dir(task) / "versions"
        artifact, staged = staged, staged.parent
        with store_io("cannot publish the version"):
            make_read_only(artifact)
            atomic_write(staged / RECORD, json.dumps(record, indent=2, sort_keys=True, default=str).encode())
            (staged / RECORD).chmod(0o444)
            staged.chmod(0o755)  # mkdtemp made it private; replicas may run as other users
            versions.mkdir(parents=True, exist_ok=True)
            with self.task_lock(task):
                number = self._next_number(task)
                version = f"v{number}"
                atomic_write(self._task_dir(task) / "counter", f"{number}\n".encode())
                os.rename(staged, versions / version)  # the commit point
                fsync_dir(versions)
        return version

    def _next_number(self, task: str) -> int:
        # The counter survives deletes; existing folders cover a crash between counter and rename.
        try:
            counter = int((self._task_dir(task) / "counter").read_text().strip() or 0)
        except FileNotFoundError:
            counter = 0
        existing = [int(v[1:]) for v in self.versions(task)]
        return max([counter, *existing]) + 1

    def clean_staging(self) -> list[str]:
        if not self._staging_root.is_dir():
            return []
        removed: list[str] = []
        try:
            lock = _flock(self._staging_root / ".lock", fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock = None  # a push is staging right now: only clear what is clearly stale
        except OSError:
            return removed  # read-only store: nothing to clean, and nothing can be half-written
        try:
            now = time.time()
            for entry in self._staging_root.iterdir():
                if entry.name == ".lock":
                    continue
                with contextlib.suppress(OSError):
                    if lock is not None or now - entry.lstat().st_mtime > self.stale_after_s:
                        force_rmtree(entry)
                        removed.append(entry.name)
        finally:
            if lock is not None:
                os.close(lock)
        return removed

    # -- reading -----------------------------------------------------------------
    def tasks(self) -> list[str]:
        root = self.root / "tasks"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if re.fullmatch(TASK_NAME_PATTERN, p.name) and p.is_dir())

    def versions(self, task: str) -> list[str]:
        folder = self._task_dir(task) / "versions"
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if re.fullmatch(VERSION_PATTERN, p.name) and (p / RECORD).is_file()]
        return sorted(found, key=lambda v: int(v[1:]))

    def read_record(self, task: str, version: str) -> dict[str, Any]:
        try:
            return json.loads((self._version_dir(task, version) / RECORD).read_bytes())
        except FileNotFoundError:
            raise NotFound(f"task {task!r} has no version {version}") from None
        except ValueError:
            raise InvalidArtifact(f"{task} {version}: the stored record is corrupt") from None

    def artifact_dir(self, task: str, version: str) -> Path:
        path = self._version_dir(task, version) / ARTIFACT_DIR
        if not path.is_dir():
            raise NotFound(f"task {task!r} has no version {version}")
        return path

    # -- the active pointer ----------------------------------------------------------
    @contextlib.contextmanager
    def task_lock(self, task: str) -> Iterator[None]:
        with store_io(f"cannot lock task {task!r}"):
            self._task_dir(task).mkdir(parents=True, exist_ok=True)
            fd = _flock(self._task_dir(task) / ".lock", fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)  # closing releases the flock (and a crash releases it too)

    def pointer_bytes(self, task: str) -> bytes:
        try:
            return (self._task_dir(task) / POINTER).read_bytes()
        except FileNotFoundError:
            return b""

    def read_pointer(self, task: str) -> dict[str, Any] | None:
        raw = self.pointer_bytes(task)
        return json.loads(raw) if raw else None

    def write_pointer(self, task: str, pointer: dict[str, Any]) -> None:
        data = dict(pointer, generation=uuid.uuid4().hex)  # every write differs, even A -> B -> A
        with store_io(f"cannot change the active version of {task!r}"):
            atomic_write(self._task_dir(task) / POINTER, json.dumps(data, sort_keys=True, default=str).encode())

    def remove_version(self, task: str, version: str) -> None:
        source = self._version_dir(task, version)
        if not source.is_dir():
            raise NotFound(f"task {task!r} has no version {version}")
        with store_io(f"cannot delete {task} {version}"):
            self._staging_root.mkdir(parents=True, exist_ok=True)
            trash = self._staging_root / f"deleted-{uuid.uuid4().hex}"
            os.rename(source, trash)  # vanishes atomically; the bytes go after
            fsync_dir(source.parent)
        force_rmtree(trash)

    # -- audit --------------------------------------------------------------------------
    def append_audit(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        with store_io("cannot write the audit log"):
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "audit.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # whole lines, even from many processes
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)

    def audit_lines(self) -> Iterator[dict[str, Any]]:
        try:
            f = open(self.root / "audit.jsonl", "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            return
        with f:
            for raw in f:
                with contextlib.suppress(ValueError):  # a torn last line after a crash
                    yield json.loads(raw)
