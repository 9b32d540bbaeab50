"""Writing results: one output policy for every command, atomic file writes.

The policy (:class:`OutputFolder`, used by every command that writes a folder):

* ``--out`` is normalised lexically (``a/b/../c`` is ``a/c``: no stray folders);
* a new or empty folder is used; a non-empty folder is used only if it holds the marker
  file :data:`MARKER` of the same command kind (its own earlier output, which a resumable
  command resumes) unless ``force``;
* no symbolic link is followed: ``--out`` itself, or any file or folder inside it, being a
  link is refused (writing through a link would write outside ``--out``);
* every file is written atomically (:func:`atomic_write`: a temporary file in the same
  folder, then ``os.replace``), figures too (:func:`save_figure`);
* a failed run (an error, an exception, Ctrl-C) removes what it created and nothing else:
  files and folders that did not exist before it, and the folders above ``--out`` it made. A
  resumable command keeps the files it wrote (its checkpoints) and removes only the folders
  it made that hold nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import xarray as xr

from ionspike.errors import IonspikeError, ParameterError

MARKER = ".ionspike.json"      # in every command's output folder: which command wrote it


class OutputError(IonspikeError, ValueError):
    """An output path that the output policy refuses (a link, a foreign folder, a file, ...)."""


def normalize(out: str | Path, option: str = "--out") -> Path:
    """``out`` with ``.`` and ``..`` removed lexically (never following links); refuses an empty path
    or one with a NUL character."""
    text = os.fspath(out)
    if not text or "\0" in text:
        raise OutputError(f"{option} {text!r} is not a usable path: allowed a non-empty path without NUL characters")
    return Path(os.path.normpath(text))


def _refuse_link(path: Path, option: str, what: str = "") -> None:
    if path.is_symlink():
        where = f" ({what})" if what else ""
        raise OutputError(f"{option} {str(path)!r}{where} is a symbolic link: ionspike never writes through a link "
                          "(it could point outside the output folder); remove it or give the real path")


def _inside_links(root: Path) -> list[Path]:
    """Symbolic links anywhere under ``root`` (not followed)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                found.append(p)
    return found


def _tree(root: Path) -> set[Path]:
    """Every file and folder under ``root`` (relative paths; links are not followed)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        out.update(rel / n for n in dirnames + filenames)
    return out


def read_marker(folder: str | Path) -> dict | None:
    """The marker of an ionspike output folder (None if there is none; ``{}`` if it is unreadable)."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class OutputFolder:
    """The output folder of one command run, under the output policy (see the module docstring).

    Use as a context manager around everything the command does::

        with OutputFolder(out, "simulate", force=force) as root:
            ...write into root...

    Args:
        out: the folder (``--out``).
        kind: the command writing it (``"simulate"``, ``"train"``, ...): recorded in :data:`MARKER`;
            a folder of another kind is foreign.
        force: use a non-empty folder that is not this kind's (its files are kept unless
            overwritten). Links are refused even then.
        resumable: on failure keep the files written (checkpoints); remove only empty folders made.
        identity: further marker fields an existing folder must match to be reused (for
            ``reproduce``: the ionspike version and the mode); a mismatch is refused unless ``force``.
        option: the option's name in messages.
    """

    def __init__(self, out: str | Path, kind: str, *, force: bool = False, resumable: bool = False,
                 identity: dict | None = None, option: str = "--out"):
        self.option = option
        self.root = normalize(out, option)
        self.kind = kind
        self.force = force
        self.resumable = resumable
        self.identity = dict(identity or {})
        self._made: list[Path] = []          # folders this run created, the outermost first
        self._before: set[Path] | None = None

    # ------------------------------------------------------------------ checks
    def _where(self) -> str:
        return f"{self.option} {str(self.root)!r}"

    def check(self) -> None:
        """Refuse a path the policy does not allow (nothing is created)."""
        root = self.root
        _refuse_link(root, self.option)
        if root.exists() and not root.is_dir():
            raise OutputError(f"{self._where()} is an existing file: allowed a directory path")
        if not root.is_dir():
            return
        info = read_marker(root)
        entries = [p for p in root.iterdir() if p.name != MARKER]
        if info is None and entries and not self.force:
            raise OutputError(f"{self._where()} is a non-empty folder that ionspike did not write (no {MARKER}): choose "
                              "an empty or new folder, or pass --force to write into it (its files are kept unless a "
                              "file of the same name is written)")
        if info is not None and not self.force:
            if not info.get("kind"):
                raise OutputError(f"{self._where()} has an unreadable {MARKER}: choose another folder, or pass --force "
                                  "to write into it")
            if info.get("kind") != self.kind:
                raise OutputError(f"{self._where()} holds the output of `ionspike {info['kind']}`, not of `ionspike "
                                  f"{self.kind}`: choose another folder, or pass --force to write into it")
            for key, want in self.identity.items():
                if info.get(key) != want:
                    raise OutputError(f"{self._where()} holds `ionspike {self.kind}` output with {key} = "
                                      f"{info.get(key)!r}; this run has {key} = {want!r}: choose another folder (results "
                                      "of the two are not mixed), or pass --force to start it afresh")
        links = _inside_links(root)
        if links:
            shown = ", ".join(repr(str(p)) for p in links[:3]) + (f" and {len(links) - 3} more" if len(links) > 3 else "")
            raise OutputError(f"{self._where()} holds symbolic links ({shown}): ionspike never writes through a link "
                              "(it could point outside the output folder); remove them or choose another folder")
        if not os.access(root, os.W_OK | os.X_OK):
            raise OutputError(f"{self._where()} is not writable")

    # ------------------------------------------------------------------ open / close
    def open(self) -> Path:
        """Check, create the folder (and the missing ones above it), write the marker; return the folder."""
        self.check()
        root = self.root
        self._before = _tree(root) if root.is_dir() else set()
        missing = []
        p = root
        while not p.exists() and not p.is_symlink() and p != p.parent:
            missing.append(p)
            p = p.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except OSError as exc:
                self._remove_made()
                raise OutputError(f"{self._where()} cannot be created: {exc.strerror} ({str(folder)!r})") from None
            self._made.append(folder)
        if not os.access(root, os.W_OK | os.X_OK):
            self._remove_made()
            raise OutputError(f"{self._where()} is not writable")
        info = read_marker(root)
        if info is None or info.get("kind") != self.kind or any(info.get(k) != v for k, v in self.identity.items()):
            write_json(root / MARKER, {"kind": self.kind, **self.identity})
        return root

    def __enter__(self) -> Path:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and not _is_success(exc):
            self.clean_up()
        return False

    def clean_up(self) -> None:
        """Remove what this run created (see the module docstring); never a file that existed before."""
        if self._before is None or not self.root.is_dir() or self.root.is_symlink():
            return
        before = self._before
        for dirpath, dirnames, filenames in os.walk(self.root, topdown=False, followlinks=False):
            here = Path(dirpath)
            rel = here.relative_to(self.root)
            if not self.resumable:
                for name in filenames:
                    if rel / name not in before:
                        _unlink(here / name)
            for name in dirnames:
                if rel / name not in before:
                    _rmdir_if_empty(here / name)
        if Path(MARKER) not in before and _tree(self.root) - before == {Path(MARKER)}:
            _unlink(self.root / MARKER)         # a resumable run that kept nothing but the marker
        self._remove_made()

    def _remove_made(self) -> None:
        for folder in reversed(self._made):
            if not _rmdir_if_empty(folder):
                break
        self._made = [f for f in self._made if f.exists()]


def _is_success(exc: BaseException | None) -> bool:
    """A clean exit raised as an exception (``SystemExit(0)``, click's ``Exit(0)``)."""
    if isinstance(exc, SystemExit):
        return exc.code in (0, None)
    return getattr(exc, "exit_code", None) == 0


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _rmdir_if_empty(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except OSError:
        return False


def check_out_file(path: str | Path, *, option: str = "-o", force: bool = False,
                   ours: Callable[[Path], bool] | None = None) -> Path:
    """The output policy for a command that writes one file: the path normalised; refused if it is a
    link, a folder, in a folder that does not exist, or an existing file that ``ours`` does not
    recognise as this command's output (unless ``force``)."""
    p = normalize(path, option)
    _refuse_link(p, option)
    if p.is_dir():
        raise OutputError(f"{option} {str(p)!r} is a directory: allowed a file name, e.g. {str(p / 'neuron.cir')!r}")
    if p.exists() and not p.is_file():
        raise OutputError(f"{option} {str(p)!r} exists and is not a regular file (a device, pipe or socket)")
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(f"{option} {str(p)!r}: the folder {str(parent)!r} does not exist: allowed a file in an "
                          "existing folder (create the folder first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {str(p)!r}: the folder {str(parent)!r} is not writable")
    if p.exists() and not force and ours is not None and not ours(p):
        raise OutputError(f"{option} {str(p)!r} exists and was not written by this command: choose another file name, "
                          "or pass --force to replace it")
    return p


def prepare_out_dir(out: str | Path) -> Path:
    """Create ``out`` as a directory (parents too) and return it, normalised; refuse a path that is
    a link, a file or unwritable. (Commands use :class:`OutputFolder`; this serves the library's
    own sub-folders.)"""
    path = normalize(out)
    _refuse_link(path, "--out")
    if path.exists() and not path.is_dir():
        raise ParameterError(f"--out {str(path)!r} is an existing file: allowed a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"--out {str(path)!r} cannot be created: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ParameterError(f"--out {str(path)!r} is not writable")
    return path


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path`` (same directory, atomic on POSIX).

    Refuses a ``path`` that is a symbolic link (the link would be replaced, its target never
    written), a directory or another non-regular file, and a folder that does not exist, with
    :class:`OutputError`.
    """
    path = Path(path)
    _refuse_link(path, "output file")
    if path.is_dir():
        raise OutputError(f"output file {str(path)!r} is a directory")
    if path.exists() and not path.is_file():
        raise OutputError(f"output file {str(path)!r} exists and is not a regular file (a device, pipe or socket)")
    if not path.parent.is_dir():
        raise OutputError(f"output file {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """``fig.savefig`` to ``path`` atomically (format from the suffix); never through a link."""
    path = Path(path)
    fmt = savefig_kwargs.pop("format", None) or (path.suffix.lstrip(".").lower() or "png")
    return atomic_write(path, lambda p: fig.savefig(p, format=fmt, **savefig_kwargs))


def jsonable(data: Any) -> Any:
    """Nested data with NumPy scalars made Python and non-finite floats made JSON-safe
    (NaN -> null, inf -> "inf")."""
    import math

    import numpy as np

    if isinstance(data, dict):
        return {str(k): jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [jsonable(v) for v in data]
    if isinstance(data, np.ndarray):
        return jsonable(data.tolist())
    if isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None if math.isnan(data) else ("inf" if data > 0 else "-inf")
    return data


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"))


def write_netcdf(path: str | Path, ds: xr.Dataset) -> Path:
    return atomic_write(path, lambda p: ds.to_netcdf(p, engine="netcdf4"))


def read_netcdf(path: str | Path) -> xr.Dataset:
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()
