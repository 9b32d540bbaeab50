"""One output policy for every command (ionspike.io.OutputFolder): foreign folders, links, `..`,
atomic writes and the clean-up of a failed run; in-process for the policy, through the real CLI
(a subprocess) for the commands."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ionspike import io  # noqa: E402


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "ionspike.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --------------------------------------------------------------------------- the policy, in-process
def test_new_folder_gets_a_marker_and_same_kind_is_reused(tmp_path):
    with io.OutputFolder(tmp_path / "run", "simulate") as root:
        io.write_json(root / "metrics.json", {"a": 1})
    assert json.loads((root / io.MARKER).read_text()) == {"kind": "simulate"}
    with io.OutputFolder(tmp_path / "run", "simulate") as again:      # its own output: reused
        assert again == root
    with pytest.raises(io.OutputError, match="holds the output of `ionspike simulate`, not of `ionspike train`"):
        io.OutputFolder(tmp_path / "run", "train").open()


def test_foreign_folder_is_refused_unless_forced_and_its_files_are_kept(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.json").write_text("mine")
    with pytest.raises(io.OutputError, match="non-empty folder that ionspike did not write"):
        io.OutputFolder(foreign, "simulate").open()
    assert tree(foreign) == {"metrics.json"} and (foreign / "metrics.json").read_text() == "mine"
    with pytest.raises(RuntimeError):
        with io.OutputFolder(foreign, "simulate", force=True) as root:
            io.write_json(root / "new.json", {})
            raise RuntimeError("the run fails")
    assert tree(foreign) == {"metrics.json"} and (foreign / "metrics.json").read_text() == "mine"


def test_identity_mismatch_is_refused(tmp_path):
    io.OutputFolder(tmp_path / "r", "reproduce", identity={"mode": "quick"}).open()
    with pytest.raises(io.OutputError, match="mode = 'quick'; this run has mode = 'tiny'"):
        io.OutputFolder(tmp_path / "r", "reproduce", identity={"mode": "tiny"}).open()


def test_links_are_never_followed(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_text("keep me")
    root = tmp_path / "run"
    io.OutputFolder(root, "simulate").open()
    (root / "traces.png").symlink_to(outside)
    with pytest.raises(io.OutputError, match="holds symbolic links .*traces.png"):
        io.OutputFolder(root, "simulate").open()
    with pytest.raises(io.OutputError, match="holds symbolic links"):
        io.OutputFolder(root, "simulate", force=True).open()            # not even with --force
    fig = plt.figure()
    with pytest.raises(io.OutputError, match="is a symbolic link"):
        io.save_figure(fig, root / "traces.png")                       # the writer refuses it too
    plt.close(fig)
    assert outside.read_text() == "keep me"
    # a linked sub-folder: writing into it would escape
    (tmp_path / "elsewhere").mkdir()
    sub = tmp_path / "run2"
    io.OutputFolder(sub, "reproduce").open()
    (sub / "stages").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(io.OutputError, match="holds symbolic links .*stages"):
        io.OutputFolder(sub, "reproduce").open()
    with pytest.raises(io.OutputError, match="is a symbolic link"):
        io.prepare_out_dir(sub / "stages")
    # --out itself a link
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(io.OutputError, match="'.*link' is a symbolic link"):
        io.OutputFolder(link, "simulate").open()
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_dotdot_is_resolved_without_stray_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with io.OutputFolder("a/b/../c", "simulate") as root:
        assert root == Path("a/c")
    assert tree(tmp_path) == {"a", "a/c", f"a/c/{io.MARKER}"}


def test_failed_run_removes_only_what_it_created(tmp_path):
    deep = tmp_path / "x" / "y" / "run"
    with pytest.raises(KeyboardInterrupt):
        with io.OutputFolder(deep, "characterize") as root:
            io.write_json(root / "leaky.json", {})
            (root / "sub").mkdir()
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []                                # x/, y/, run/ and the files: gone
    # a folder of its own with an earlier result: the earlier file stays, the new ones go
    kept = tmp_path / "kept"
    with io.OutputFolder(kept, "characterize") as root:
        io.write_json(root / "old.json", {"v": 1})
    with pytest.raises(ValueError):
        with io.OutputFolder(kept, "characterize") as root:
            io.write_json(root / "new.json", {})
            raise ValueError("boom")
    assert tree(kept) == {io.MARKER, "old.json"}


def test_resumable_run_keeps_its_checkpoints_and_drops_empty_folders(tmp_path):
    root_path = tmp_path / "train"
    with pytest.raises(KeyboardInterrupt):
        with io.OutputFolder(root_path, "train", resumable=True) as root:
            (root / "runs" / "empty").mkdir(parents=True)
            io.write_json(root / "checkpoint.json", {"epoch": 1})
            raise KeyboardInterrupt
    assert tree(root_path) == {io.MARKER, "checkpoint.json"}
    nothing = tmp_path / "nothing"
    with pytest.raises(KeyboardInterrupt):
        with io.OutputFolder(nothing, "train", resumable=True) as root:
            (root / "runs").mkdir()
            raise KeyboardInterrupt
    assert not nothing.exists()                                         # it held nothing: removed


def test_single_file_outputs(tmp_path):
    with pytest.raises(io.OutputError, match="-o .*the folder .*missing' does not exist"):
        io.check_out_file(tmp_path / "missing" / "n.cir")
    with pytest.raises(io.OutputError, match="is a directory"):
        io.check_out_file(tmp_path)
    theirs = tmp_path / "theirs.cir"
    theirs.write_text("not ours")
    with pytest.raises(io.OutputError, match="was not written by this command"):
        io.check_out_file(theirs, ours=lambda p: False)
    assert io.check_out_file(theirs, ours=lambda p: False, force=True) == theirs
    with pytest.raises(io.OutputError, match="not a regular file"):
        io.atomic_write(Path("/dev/null"), lambda p: p.write_text("x"))


CLEANUP_EXAMPLES = 60
rel_path = st.lists(st.sampled_from(["a", "b", "c", "d.json"]), min_size=1, max_size=3).map(lambda p: Path(*p))


@settings(max_examples=CLEANUP_EXAMPLES, deadline=None, derandomize=True)
@given(existing=st.lists(rel_path, max_size=5), written=st.lists(rel_path, min_size=1, max_size=6),
       resumable=st.booleans(), failure=st.sampled_from([KeyboardInterrupt, OSError, ValueError]))
def test_a_failed_run_removes_exactly_what_it_created(existing, written, resumable, failure):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "out"
        root.mkdir()
        for rel in existing:                       # a user's folder: files at the leaves (a clash is skipped)
            try:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                if not (root / rel).exists():
                    (root / rel).write_text(f"user {rel}")
            except (FileExistsError, NotADirectoryError):
                pass
        before = {p: (p.read_text() if p.is_file() else None) for p in root.rglob("*")}
        new_files = set()
        with pytest.raises(failure):
            with io.OutputFolder(root, "ablate", force=True, resumable=resumable) as out:
                for rel in written:
                    try:
                        (out / rel).parent.mkdir(parents=True, exist_ok=True)
                        if not (out / rel).exists():
                            io.write_json(out / rel, {"run": str(rel)})
                            new_files.add(out / rel)
                    except (FileExistsError, NotADirectoryError, io.OutputError):
                        pass
                raise failure("stop")
        after = {p: (p.read_text() if p.is_file() else None) for p in root.rglob("*")}
        assert {p: after.get(p) for p in before} == before                 # every user file and folder, unchanged
        left = set(after) - set(before)
        if resumable:
            assert {p for p in left if p.is_file()} == new_files | ({root / io.MARKER} if new_files else set())
            assert all(p.is_file() or any(q.is_file() for q in p.rglob("*")) for p in left)   # no empty folder
        else:
            assert left == set()


# --------------------------------------------------------------------------- the commands (real CLI)
def test_cli_refuses_a_foreign_folder_and_a_planted_link(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.json").write_text("mine")
    proc = cli("simulate", "--duration", "5ms", "--out", str(foreign))
    assert proc.returncode == 2 and "did not write" in proc.stderr and "--force" in proc.stderr
    assert (foreign / "metrics.json").read_text() == "mine" and tree(foreign) == {"metrics.json"}
    # a folder that is ours, with a link planted where the figure goes
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / io.MARKER).write_text(json.dumps({"kind": "simulate"}))
    target = tmp_path / "target.png"
    target.write_text("keep me")
    (ours / "traces.png").symlink_to(target)
    proc = cli("simulate", "--duration", "5ms", "--force", "--out", str(ours))
    assert proc.returncode == 2 and "symbolic link" in proc.stderr and "Traceback" not in proc.stderr
    assert target.read_text() == "keep me" and tree(ours) == {io.MARKER, "traces.png"}


def test_cli_failed_run_leaves_nothing_and_dotdot_leaves_no_stray_folder(tmp_path):
    # the error comes from inside the simulation (after the folder was made): a/b/c is removed again
    proc = cli("simulate", "--duration", "5ms", "--dt", "1ms", "--out", "a/b/c", cwd=tmp_path)
    assert proc.returncode == 2 and "too coarse" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    proc = cli("simulate", "--duration", "2ms", "--deterministic", "--out", "x/y/../z", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert tree(tmp_path) == {"x", "x/z", f"x/z/{io.MARKER}", "x/z/traces.nc", "x/z/metrics.json", "x/z/traces.png"}
