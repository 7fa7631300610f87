"""Checkpoint faults, injected in-process: a save that fails (disk full, I/O error, permission),
a damaged checkpoint_last.pt at start, two runs into one --save-dir, a flipped byte."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import tupe
from tests.train.conftest import tiny_args
from tupe.checkpoint import MANIFEST, CheckpointError, read_checkpoint, read_manifest, sha256_file
from tupe.train.savedir import LOCK_FILE
from tupe.train.trainer import main

RUN = ["--max-update", "6", "--save-interval-updates", "2", "--no-epoch-checkpoints", "--disable-validation",
       "--total-num-update", "6"]


def updates(path):
    return read_checkpoint(path)["optimizer_history"][-1]["num_updates"]


def leftovers(save):
    return sorted(p.name for p in save.iterdir() if p.name.startswith(".") or p.name.endswith(".part"))


def fail_on_call(monkeypatch, target, n, error):
    """Patch ``target`` (module, name) to raise ``error`` on its n-th call, after writing some
    bytes where a writer would (a partial file, as a real full disk leaves)."""
    module, name = target
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            dest = args[1]
            Path(dest).write_bytes(b"PK\x03\x04 partial")
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


TORCH_ENOSPC = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")


@pytest.mark.parametrize("target,error,words", [
    ((torch, "save"), TORCH_ENOSPC, "probably the disk is full"),                      # torch's own report
    ((torch, "save"), OSError(errno.ENOSPC, "No space left on device"), "the disk is full (ENOSPC)"),
    ((shutil, "copyfile"), OSError(errno.ENOSPC, "No space left on device"), "the disk is full (ENOSPC)"),
    ((torch, "save"), OSError(errno.EIO, "Input/output error"), "input/output error"),
    ((shutil, "copyfile"), OSError(errno.EACCES, "Permission denied"), "permission denied (EACCES)"),
    ((torch, "save"), OSError(errno.EDQUOT, "Disk quota exceeded"), "quota"),
], ids=["torch-enospc", "enospc", "enospc-copy", "eio", "eacces", "edquot"])
def test_failed_save_stops_cleanly_and_the_same_command_resumes(data_dir, tmp_path, monkeypatch, capsys,
                                                                  target, error, words):
    save = tmp_path / "ck"
    args = tiny_args(data_dir, save, *RUN)
    # the second save (update 4) fails; copyfile: the 6th copy (dict.txt, bpe-code, two names at
    # update 2, then checkpoint_1_4.pt done and checkpoint_last.pt failing: a save half done)
    fail_on_call(monkeypatch, target, 2 if target[1] == "save" else 6, error)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("train.py: error: could not save") == 1 and words in err and "Traceback" not in err
    assert "Nothing is damaged" in err and "rerun the same command to resume" in err
    assert leftovers(save) == []                                       # temporary files removed
    assert updates(save / "checkpoint_last.pt") == 2                   # the previous one, intact
    manifest = read_manifest(save)
    for name, digests in manifest.items():                             # recorded checksums still true
        assert digests == [sha256_file(save / name)], name
    assert not (save / LOCK_FILE).exists()                             # the lock is released on errors
    monkeypatch.undo()                                                 # "space freed"
    assert main(args) == 0
    assert "loaded checkpoint" in capsys.readouterr().out
    assert updates(save / "checkpoint_last.pt") == 6


@pytest.fixture
def finished_run(data_dir, tmp_path):
    save = tmp_path / "ck"
    assert main(tiny_args(data_dir, save, *RUN)) == 0
    return save


@pytest.mark.parametrize("damage", ["truncated", "zero-bytes", "garbage", "flipped-byte"])
def test_damaged_checkpoint_last_names_intact_ones_and_never_starts_over(finished_run, data_dir, capsys, damage):
    save = finished_run
    last = save / "checkpoint_last.pt"
    data = last.read_bytes()
    before = {p.name: p.read_bytes() for p in save.glob("checkpoint*.pt")}
    if damage == "truncated":
        last.write_bytes(data[: len(data) // 2])
    elif damage == "zero-bytes":
        last.write_bytes(b"")
    elif damage == "garbage":
        last.write_bytes(os.urandom(len(data)))
    else:
        i = len(data) // 2
        last.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:])
    damaged = last.read_bytes()
    capsys.readouterr()
    args = tiny_args(data_dir, save, *RUN[:1], "10", *RUN[2:])
    assert main(args) == 1
    err = capsys.readouterr().err
    assert str(last) in err and "training did not start" in err and "Traceback" not in err
    assert "checkpoint_1_6.pt (update 6)" in err and "--restore-file checkpoint_1_6.pt" in err
    assert last.read_bytes() == damaged                                # nothing overwritten
    assert {p.name: p.read_bytes() for p in save.glob("checkpoint_*_*.pt")} == \
        {k: v for k, v in before.items() if k.startswith("checkpoint_1")}
    assert main(args + ["--restore-file", "checkpoint_1_6.pt"]) == 0   # the named flag works
    assert updates(last) == 10


def test_a_crash_inside_a_save_leaves_every_file_matching_its_record(data_dir, tmp_path, monkeypatch):
    """Between the renames of one save the manifest lists old and new digests: a kill -9 there
    (simulated: the process stops right after the first rename) leaves nothing 'damaged'."""
    save = tmp_path / "ck"
    args = tiny_args(data_dir, save, *RUN)
    real = os.replace

    def replace(src, dst):
        real(src, dst)
        if str(dst).endswith("checkpoint_1_4.pt"):
            raise KeyboardInterrupt                                    # stands for SIGKILL at this point
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    monkeypatch.undo()
    for name in ("checkpoint_1_4.pt", "checkpoint_last.pt", "checkpoint_1_2.pt"):
        read_checkpoint(save / name)                                   # every file passes its check
    assert updates(save / "checkpoint_last.pt") == 2 and updates(save / "checkpoint_1_4.pt") == 4
    (save / LOCK_FILE).unlink(missing_ok=True)                        # (a real kill leaves a stale lock)
    assert main(args) == 0 and updates(save / "checkpoint_last.pt") == 6


def test_flipped_byte_is_detected_at_load(finished_run):
    path = finished_run / "checkpoint_1_4.pt"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x10                                                 # inside the zip's last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged: its SHA-256 differs"):
        read_checkpoint(path)
    assert MANIFEST in str(pytest.raises(CheckpointError, tupe.load_model, path).value)


def test_checksum_manifest_follows_retention(data_dir, tmp_path):
    save = tmp_path / "ret"
    assert main(tiny_args(data_dir, save, *RUN, "--keep-interval-updates", "1")) == 0
    manifest = read_manifest(save)
    assert set(manifest) == {p.name for p in save.glob("checkpoint*.pt")} == {"checkpoint_1_6.pt", "checkpoint_last.pt"}
    assert all(d == [sha256_file(save / n)] for n, d in manifest.items())
    check = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=save, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2  # the standard tool agrees


def write_lock(save, pid, started, host=None):
    import json

    from tupe.train.savedir import _start_time
    save.mkdir(parents=True, exist_ok=True)
    (save / LOCK_FILE).write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid,
                                               "started": started if started is not None else _start_time(pid),
                                               "since": "2026-11-30 00:00:00", "command": "train.py other"}))


def test_second_run_into_a_locked_save_dir_refuses(data_dir, tmp_path, capsys):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(tmp_path / "ck", other.pid, None)
        assert main(tiny_args(data_dir, tmp_path / "ck", *RUN)) == 1
        err = capsys.readouterr().err
        assert "is in use by another training" in err and f"pid {other.pid}" in err and "train.py other" in err
        assert not list((tmp_path / "ck").glob("checkpoint*.pt"))       # nothing written
        assert (tmp_path / "ck" / LOCK_FILE).exists()                    # the owner's lock is left alone
    finally:
        other.kill()
        other.wait()
    assert main(tiny_args(data_dir, tmp_path / "ck", *RUN)) == 0       # its owner is gone: stale
    assert "stale lock of process" in capsys.readouterr().out
    assert not (tmp_path / "ck" / LOCK_FILE).exists()


def test_stale_lock_with_a_reused_pid_is_recognised(data_dir, tmp_path, capsys):
    write_lock(tmp_path / "ck", os.getpid(), "1")                      # a live pid, but not that process
    assert main(tiny_args(data_dir, tmp_path / "ck", *RUN)) == 0
    assert "stale lock" in capsys.readouterr().out


def test_lock_from_another_host_is_respected(data_dir, tmp_path, capsys):
    write_lock(tmp_path / "ck", 12345, "7", host="node-b.cluster")
    assert main(tiny_args(data_dir, tmp_path / "ck", *RUN)) == 1
    err = capsys.readouterr().err
    assert "pid 12345 on host node-b.cluster" in err and f"delete {tmp_path / 'ck' / LOCK_FILE}" in err


@pytest.mark.slow      # ~15 s: the lock is tested in-process above; this one with real processes
def test_concurrent_real_processes(data_dir, tmp_path):
    """Two real train.py processes launched into one --save-dir: exactly one trains. The first
    is given far more updates than it can make while the second starts and is refused (a run
    that could end first made this test depend on how fast each process starts), then stopped
    with SIGTERM, which saves checkpoint_last.pt and exits 128 + 15."""
    import signal

    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "train.py", *tiny_args(data_dir, tmp_path / "ck", "--max-update", "1000000",
                                                  "--total-num-update", "1000000", "--disable-validation")]
    a = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "ck" / LOCK_FILE).exists() and time.time() < deadline:
            time.sleep(0.05)
        b = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
        assert a.poll() is None, "the first run ended before the second was refused"
        assert b.returncode == 1 and "is in use by another training" in b.stderr
    finally:
        a.send_signal(signal.SIGTERM)
        out_a = a.communicate(timeout=300)
    assert a.returncode == 128 + signal.SIGTERM, out_a[1][-2000:]
    assert updates(tmp_path / "ck" / "checkpoint_last.pt") > 0
    assert not (tmp_path / "ck" / LOCK_FILE).exists()                     # released on the way out


def test_the_lock_message_shows_the_other_command_whole_or_elided_at_words():
    from tupe.train.savedir import elide_command

    short = "train.py data --save-dir ck --max-update 10"
    assert elide_command(short) == short
    long = "train.py data-bin/wiki " + " ".join(f"--flag-number-{i} value{i}" for i in range(80))
    shown = elide_command(long)
    assert len(shown) < 450 and " ... (" in shown and "more words) ... " in shown
    words = set(long.split(" "))
    assert all(w in words for w in shown.replace(" ... ", " ").split(" ") if w.startswith("--")), shown
    assert shown.startswith("train.py data-bin/wiki --flag-number-0 value0") and shown.endswith("value79")


def fail_writes_to(monkeypatch, match, n=1, error=OSError(errno.ENOSPC, "No space left on device")):
    """Every file the trainer writes goes through open()/Path.write_text/os.fdopen: fail the n-th
    write to a file whose name contains ``match`` after writing a few bytes (a real full disk
    leaves a partial file)."""
    import builtins

    calls = {"n": 0}
    real_open, real_write_text, real_fdopen = builtins.open, Path.write_text, os.fdopen

    class Failing:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            calls["n"] += 1
            if calls["n"] >= n:
                self.f.write(text[:3])
                self.f.flush()
                raise error
            return self.f.write(text)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Failing(f) if match in str(file) and any(c in mode for c in "wa") else f

    def fake_write_text(self, data, *args, **kwargs):
        if match in self.name:
            calls["n"] += 1
            if calls["n"] >= n:
                real_write_text(self, data[:3], *args, **kwargs)
                raise error
        return real_write_text(self, data, *args, **kwargs)

    def fake_fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return Failing(f) if match == LOCK_FILE and "w" in mode else f

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(Path, "write_text", fake_write_text)
    monkeypatch.setattr(os, "fdopen", fake_fdopen)


@pytest.mark.parametrize("target,n,words", [
    (MANIFEST, 3, "the disk is full (ENOSPC)"),            # the manifest of the second save
    ("metrics.jsonl", 4, "could not write"),                # a log record mid-run
    (LOCK_FILE, 1, "could not write the lock"),            # the lock at start
], ids=["manifest", "metrics.jsonl", "lock"])
def test_a_failed_write_to_any_file_stops_cleanly_and_resumes(data_dir, tmp_path, monkeypatch, capsys,
                                                             target, n, words):
    save = tmp_path / "ck"
    args = tiny_args(data_dir, save, *RUN)
    fail_writes_to(monkeypatch, target, n)
    assert main(args) == 1
    err = capsys.readouterr().err
    monkeypatch.undo()
    assert words in err and "Traceback" not in err, err
    assert leftovers(save) == [] if save.exists() else True              # no temporary file left
    assert not (save / LOCK_FILE).exists()                               # no lock, whole or partial
    for name, digests in read_manifest(save).items() if save.exists() else ():
        assert sha256_file(save / name) in digests, name                 # every record still true
    assert main(args) == 0                                               # the same command resumes
    assert updates(save / "checkpoint_last.pt") == 6
    if target == "metrics.jsonl":     # the record cut short (3 bytes written) is dropped, not glued to the next
        assert "dropped a record cut short at its end (3 bytes" in capsys.readouterr().out
        records = [json.loads(line) for line in (save / "metrics.jsonl").read_text().splitlines()]
        steps = [r["num_updates"] for r in records if r["type"] == "train"]
        assert sorted(set(steps)) == list(range(1, 7)) and steps[-1] == 6     # (updates redone after resume: twice)


def _mount_tmpfs(path: Path, size_kb: int) -> bool:
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_real_full_disk_leaves_no_temporary_file(data_dir, tmp_path, capsys):
    """On a real (small tmpfs) filesystem, not an injected error: the run stops with the disk-full
    message, leaves no temporary file (.tmp-*, *.part, the manifest's), and resumes elsewhere."""
    probe = tmp_path / "probe"
    assert main(tiny_args(data_dir, probe, *RUN)) == 0
    size = (probe / "checkpoint_last.pt").stat().st_size
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, (size * 4) // 1024):      # the first save fits, a later one does not
        pytest.skip("needs root and tmpfs to make a small real filesystem")
    try:
        capsys.readouterr()
        save = mount / "ck"
        assert main(tiny_args(data_dir, save, *RUN)) == 1
        err = capsys.readouterr().err
        assert "could not" in err and ("disk is full" in err or "ENOSPC" in err), err
        assert leftovers(save) == [], leftovers(save)
        assert not (save / LOCK_FILE).exists()
        for name, digests in read_manifest(save).items():
            assert sha256_file(save / name) in digests, name
        assert (save / "checkpoint_last.pt").is_file()                 # the save that fitted is intact
    finally:
        assert subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0, \
            "the mount is busy: a file in it was left open"
