"""Atomic file writes: a reader never sees half a file (temp file in the same folder, then os.replace), nor half a
folder (whole_folder); and a check that an output folder can be written at all."""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


_UMASK = os.umask(0)
os.umask(_UMASK)


DISK_FULL = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}  # EDQUOT: a quota; not on Windows


class WriteFailed(OSError):
    """A write that failed (a full disk), its message naming the file: printed as "No space left on device (writing
    9.2 MB to out/best.pt)", without OSError's "[Errno 28]" and a second copy of the name."""

    def __str__(self):
        return self.strerror


def disk_full(e: BaseException) -> str | None:
    """An error that writing met because the disk is full (or read-only, or a quota reached), as a message naming
    the file where it can; None for any other."""
    if not isinstance(e, OSError) or e.errno not in DISK_FULL:
        return None
    return f"{e.strerror}" + (f" ({e.filename})" if e.filename and str(e.filename) not in str(e.strerror) else "")


def unwritable_folder(folder) -> str | None:
    """Why ``folder`` cannot be made or written into, to follow its name in a message ("is a file, not a folder"),
    or None. Cheap: a command checks its output folder with it before any work."""
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            return "is a file, not a folder"
        probe = folder  # the nearest existing folder: the missing ones would be made in it
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            return f"is under {probe}, which is a file, not a folder"
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        return f"cannot be written to ({e.strerror or e})"
    return None


@contextmanager
def whole_folder(out: Path):
    """A hidden folder beside ``out`` to write a new folder's files into: renamed to ``out`` (which must not exist, or
    be empty) when the block ends, removed with everything in it when the block fails or is interrupted."""
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        yield partial
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(e, WriteFailed):  # named by the folder asked for, not by the hidden one that is gone
            raise WriteFailed(e.errno, e.strerror.replace(str(partial), str(out)),
                              e.filename.replace(str(partial), str(out))) from e
        raise
    try:  # finished: a rename that fails keeps the work, and says where it is
        if out.is_dir():
            out.rmdir()
        replace(partial, out)
    except OSError as e:
        raise OSError(f"{e.strerror or e}: the finished folder is kept as {partial}; rename it to {out}") from e


def stop_on_signals() -> None:
    """A terminal closed (SIGHUP) or a job ended (SIGTERM, as SLURM does) stops a command as Ctrl-C does: as a
    KeyboardInterrupt, whose handlers leave no unfinished file; its argument is the signal's number. A signal the
    command was started ignoring stays ignored (``nohup`` ignores SIGHUP so that the command outlives its terminal)."""

    def stop(signum, frame):
        raise KeyboardInterrupt(signum)

    on_signals(stop, ("SIGTERM", "SIGHUP"))


def on_signals(handler, names) -> None:
    """``handler`` for each named signal this system has (Windows has no SIGHUP or SIGUSR1), but for those the
    process was started ignoring (nohup's SIGHUP)."""
    import signal

    for name in names:
        if hasattr(signal, name) and signal.getsignal(getattr(signal, name)) is not signal.SIG_IGN:
            signal.signal(getattr(signal, name), handler)


def interrupted_code(e: KeyboardInterrupt) -> int:
    """The exit code of a command stopped by ``e``: 128 + the signal's number (stop_on_signals puts it in ``e``;
    Ctrl-C: 130)."""
    return 128 + (e.args[0] if e.args and isinstance(e.args[0], int) else 2)  # 2: SIGINT


def converted(out: Path, convert, refused: type[Exception]):
    """Run ``convert()``, which writes the new folder ``out`` (whole_folder), as a command does: (its result, None),
    or (None, the exit code) once stderr says why: 2 where it raised ``refused`` (bad input), 128 + the signal's number
    at Ctrl-C (130), SIGTERM or SIGHUP (stop_on_signals), 1 where the disk refused."""
    import sys

    stop_on_signals()
    try:
        return convert(), None
    except refused as e:
        print(f"error: {e}", file=sys.stderr)
        return None, 2
    except KeyboardInterrupt as e:
        print("interrupted: nothing was written", file=sys.stderr)
        return None, interrupted_code(e)
    except OSError as e:
        print(f"error: cannot write under {out.parent}: {e.strerror or e}", file=sys.stderr)
        return None, 1


def streamed(path) -> bool:
    """True where ``path`` is a device, a pipe or a terminal (/dev/null, /dev/stdout, a shell's ``>(command)``):
    written into as it is, never replaced by a file."""
    if os.path.abspath(path).startswith(("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/")):  # also where they
        return True  # lead to a file (`> out.csv`): written into, not replaced behind the shell's back
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """``data`` as the whole of ``path``, or nothing: a temp file renamed over it (a symbolic link is replaced, its
    target left as it was). A device or a pipe (``streamed``) is written into, appended to where it leads to a file
    (``> out.csv`` or ``>> out.csv`` behind /dev/stdout)."""
    if streamed(path):
        with open(path, "ab") as f:
            f.write(data)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # closed before any unlink below: Windows deletes no open file
            if hasattr(os, "fchmod"):  # (Windows has none before Python 3.13, nor 0600 files to mend)
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the permissions open() would
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not e.filename:  # a full disk says nothing of which file it was writing
            raise WriteFailed(e.errno, f"{e.strerror} (writing {len(data) / 1e6:.1f} MB to {path})", str(path)) from e
        raise


def replace(src, dst) -> None:
    """os.replace; on Windows tried again for up to a second where another process holds ``dst`` open for a moment
    (the dashboard reading it, a virus scanner), which makes Windows refuse the rename."""
    tries = 20 if os.name == "nt" else 1
    for i in range(tries):
        try:
            return os.replace(src, dst)
        except PermissionError:
            if i == tries - 1:
                raise
            time.sleep(0.05)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    """JSON with NaN/inf written as null (JSON has no NaN)."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False, default=_jsonable) + "\n")


def _finite(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if hasattr(o, "item") and getattr(o, "ndim", 1) == 0:
        return _finite(o.item())
    return o


def atomic_write_csv(path, df) -> None:
    """Write a pandas DataFrame as CSV atomically."""
    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))  # the same bytes on every system


def atomic_torch_save(path, obj) -> None:
    import io as _io

    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _jsonable(o):
    # numpy scalars / arrays that slipped into a metrics dict
    if hasattr(o, "item") and getattr(o, "ndim", 1) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
