"""A run folder's life: checked before any work, written out of sight, and published whole or not at all.

1. :func:`check_location` (``fusionkit validate``, ``run --dry-run``, and every run first): the requested folder
   can be created and written — the nearest existing ancestor is a folder, on a writable file system, that this
   user may write into.
2. :meth:`Staging.create`, before any input is read or anything computed: a hidden sibling
   ``.NAME.partial-HOST-PID-RANDOM`` is created, which proves for real that the location is writable.
   :meth:`Staging.check_space` then compares the outputs' size with the free space, still before computing.
3. The outputs are written into the staging folder; :meth:`Staging.publish` allocates the final name exclusively
   (``NAME``, ``NAME-2``, ... through :func:`fusionkit.io.new_run_dir`), writes the manifest last and renames the
   staging folder onto it in one step. Any failure before that removes the staging folder (:meth:`Staging.discard`):
   a folder named like a run always holds a complete set of files and a manifest saying how the run ended.

SIGINT and SIGTERM that arrive while the folder is being written are held until it is published
(:func:`signals_deferred`), then delivered as usual. A staging folder left by a process that was killed outright
(SIGKILL, power loss) is hidden, and removed by the next run into the same place on the same host.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

from .errors import RunError
from .io import new_run_dir, output_error

_FIX = "choose another `output.dir` (or --set output.dir=...)"


def requested_dir(spec) -> Path:
    """The run folder a spec asks for: ``output.dir`` with ``{name}`` filled in, absolute (against the current
    folder)."""
    d = Path(os.path.expanduser(spec.output.dir.format(name=spec.name)))
    return d if d.is_absolute() else Path.cwd() / d


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(path.anchor or ".")


def check_location(requested: str | os.PathLike) -> str | None:
    """Why a run folder cannot be created at (or beside) ``requested``, or None when it can. Creates nothing."""
    path = Path(os.path.abspath(requested))
    anchor = _nearest_existing(path)
    if anchor == path and path.is_dir():
        anchor = path.parent            # an existing folder: its numbered sibling is made in the parent
    if not anchor.is_dir():
        return f"{anchor} is a file, so the run folder {path} cannot be created under it"
    try:
        if os.statvfs(anchor).f_flag & os.ST_RDONLY:
            return f"{anchor} is on a read-only file system, so the run folder {path} cannot be written"
    except (OSError, AttributeError):
        pass
    if not os.access(anchor, os.W_OK | os.X_OK):
        return f"{anchor} is not writable by this user, so the run folder {path} cannot be created there"
    return None


class Staging:
    """The hidden folder a run's outputs are written into before :meth:`publish` gives it its name."""

    def __init__(self, requested: Path, path: Path):
        self.requested, self.path = requested, path

    @classmethod
    def create(cls, requested: str | os.PathLike) -> "Staging":
        """Make the staging folder beside ``requested`` (its parents too), or raise a :class:`RunError` with the
        fix. Call it before any work: it is the real test that the location can be written."""
        requested = Path(os.path.abspath(requested))
        problem = check_location(requested)
        if problem:
            raise RunError(f"cannot write the run folder: {problem}", _FIX)
        parent = requested.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(parent, requested.name)
            while True:
                path = parent / f"{_prefix(requested.name)}{_host()}-{os.getpid()}-{secrets.token_hex(3)}"
                try:
                    os.mkdir(path)  # mode 0777 less the umask, like the published folder will have
                    return cls(requested, path)
                except FileExistsError:
                    continue
        except OSError as exc:
            raise output_error(parent, exc) from exc

    def check_space(self, need: int) -> None:
        """Fail before any work when the outputs (``need`` bytes, roughly) will not fit."""
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:
            return
        if need > free:
            raise RunError(f"not enough free space in {self.path.parent}: the outputs need about "
                           f"{need / 2**20:.1f} MiB and {free / 2**20:.1f} MiB are free",
                           f"free some space there, or {_FIX}")

    def publish(self, finish: Callable[[Path], None]) -> Path:
        """Give the staging folder its final name, allocated exclusively, and return it. ``finish(final)`` runs
        just before the rename, to write what must name the final folder (the manifest)."""
        final = new_run_dir(self.requested)
        try:
            finish(final)
            os.rename(self.path, final)  # onto the empty folder just allocated: atomic, and never onto another's
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(final)
            raise
        return final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _prefix(name: str) -> str:
    return f".{name}.partial-"


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def _remove_stale(parent: Path, name: str) -> None:
    """Remove staging folders of ``name`` left on this host by processes that no longer exist."""
    mine = f"{_prefix(name)}{_host()}-"
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for p in entries:
        if not p.name.startswith(mine):
            continue
        try:
            pid = int(p.name[len(mine):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration, then deliver them (once each) to the handlers in place before.

    Python handlers run only in the main thread, so this works there, whichever thread the operating system
    delivers the signal to; elsewhere it does nothing. With the default SIGTERM action the process then ends as it
    would have, only after the block has finished.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame) -> None:
        pending.append(signum)

    previous = {s: signal.signal(s, hold) for s in HELD}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        for s in dict.fromkeys(pending):
            signal.raise_signal(s)
