"""A disk that fills up mid-run: a clear message, nothing half-written, and the retry works.

The disk is real: a small tmpfs that root mounts for the test (skipped
where it cannot), nearly filled by a file that is removed before the retry.
"""

import errno
import os
import shutil
import subprocess
import sys

import pytest

from harness import check_files_whole
from tfx_transfer.train.pipeline import disk_full

TINY = ["--image-size", "48", "--batch-size", "8", "--epochs", "2", "--fine-tune-epochs", "1",
        "--no-augment", "--val-fraction", "0.25", "--test-fraction", "0.25"]


@pytest.fixture
def small_disk(tmp_path):
    """A 96 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root only): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _train(args):
    return subprocess.run([sys.executable, "-m", "tfx_transfer", *args],
                          capture_output=True, text=True, timeout=400)


def test_disk_full_is_recognised_through_the_exception_chain():
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("Unable to synchronously create file") from error
    except RuntimeError as wrapped:
        assert disk_full(wrapped)
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))


@pytest.mark.slow
def test_a_run_that_fills_the_disk_fails_clearly_and_resumes_once_space_is_freed(
        small_disk, colour_folder):
    # Leave 20 MiB: enough for the config and the data report, not for the
    # checkpoints and the export of a 13 MB network.
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    with open(filler, "wb") as f:
        f.truncate(0)
        f.write(b"\0" * (free - 20 * 2**20))
    run_dir = small_disk / "runs" / "full"
    failed = _train(["train", "--data", str(colour_folder), *TINY, "--output-dir",
                     str(small_disk / "runs"), "--run-name", "full"])
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr[-2000:]
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: The disk is full (No space left on device). Run "
                              f"{run_dir} keeps every file"), failed.stderr[-2000:]
    assert message.endswith(f"resume it with: python -m tfx_transfer train --resume {run_dir}")
    # Weights files check the free space first: no HDF5 file is left that h5py
    # can neither flush nor close (a traceback at exit, even a crash).
    assert "Traceback" not in failed.stderr
    assert check_files_whole(run_dir) >= 1  # config.yaml, at least: whole, like the rest

    os.remove(filler)
    resumed = _train(["train", "--resume", str(run_dir), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Test accuracy" in resumed.stdout
    assert (run_dir / "saved_model" / "saved_model.pb").is_file()
    assert check_files_whole(run_dir) >= 8
