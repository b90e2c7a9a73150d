"""`kill -9` a training run at 20 moments, resume it each time: nothing half-written, nothing lost.

Each attempt starts the run (or resumes it), waits for the phase it aims
at to print its first line, waits a seeded random fraction of a second
more and sends SIGKILL: no handler runs, as when a machine loses power or
the kernel's OOM killer strikes. After every kill each file that exists
under its final name must be whole; at the end the resumed run must score
as an uninterrupted one does.
"""

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import serve_in_fresh_process
from harness import check_files_whole

TINY = ["--image-size", "48", "--batch-size", "8", "--epochs", "3", "--fine-tune-epochs", "2",
        "--no-augment", "--val-fraction", "0.25", "--test-fraction", "0.25", "--seed", "0"]
# (phase, the first line it prints); a kill lands after it.
PHASES = (
    ("start", None),
    ("data scan", "Checking that"),
    ("feature extraction", "Backbone features of"),
    ("head stage", "Stage 'head'"),
    ("fine-tune stage", "Epoch "),
    ("baseline", "Baseline: backbone features"),
    ("evaluation", "Evaluating on the test split"),
    ("export", "Exporting"),
)
KILLS = 20


def _command(run_dir, data):
    if (run_dir / "config.yaml").is_file():
        return ["train", "--resume", str(run_dir)]
    return ["train", "--data", str(data), *TINY, "--output-dir", str(run_dir.parent),
            "--run-name", run_dir.name]


class _Run:
    """A training process whose output a thread reads, line by line, as it comes."""

    def __init__(self, args, home):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TFX_TRANSFER_HOME": str(home)}
        self.process = subprocess.Popen([sys.executable, "-m", "tfx_transfer", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
        self.lines = queue.Queue()
        self.output = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def kill_after(self, marker, delay, timeout=240):
        """Waits for `marker` (None: none), `delay` s more, then SIGKILL; True if killed."""
        deadline = time.time() + timeout
        while marker is not None:
            line = self.lines.get(timeout=max(1, deadline - time.time()))
            if line is None:
                return False  # Finished (or failed) before the phase came.
            if marker in line:
                break
        end = time.time() + delay
        while time.time() < end and self.process.poll() is None:
            time.sleep(0.02)
        if self.process.poll() is not None:
            return False
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return True

    def finish(self, timeout=300):
        """Waits for the end; asserts exit 0."""
        self.process.wait(timeout=timeout)
        time.sleep(0.1)  # The reader's last lines.
        assert self.process.returncode == 0, "".join(self.output)[-3000:]


@pytest.mark.slow
def test_kill_9_at_20_moments_loses_nothing_and_resumes_to_the_same_score(
        colour_folder, tmp_path):
    rng = random.Random(0)
    home = tmp_path / "home"
    runs, kills, finished, checked, killed_in = [], 0, 0, 0, {}
    run_dir = tmp_path / "runs" / "run-1"
    attempt = 0
    while kills < KILLS:
        phase, marker = PHASES[attempt % len(PHASES)]
        attempt += 1
        run = _Run(_command(run_dir, colour_folder), home)
        delay = rng.uniform(0.5, 6.0) if marker is None else rng.uniform(0.0, 1.5)
        if run.kill_after(marker, delay):
            kills += 1
            killed_in[phase] = killed_in.get(phase, 0) + 1
        else:
            run.finish()
            finished += 1
            runs.append(run_dir)
            run_dir = tmp_path / "runs" / f"run-{len(runs) + 1}"
        checked += check_files_whole(run_dir, home)
        for done in runs:
            checked += check_files_whole(done, home)
    # The last one, resumed until it finishes.
    _Run(_command(run_dir, colour_folder), home).finish()
    runs.append(run_dir)
    finished += 1
    checked += check_files_whole(run_dir, home)

    # An uninterrupted run of the same config, for the score to match.
    reference = tmp_path / "runs" / "reference"
    _Run(_command(reference, colour_folder), tmp_path / "home-reference").finish()
    expected = json.loads((reference / "metrics.json").read_text())["accuracy"]
    for done in runs:
        metrics = json.loads((done / "metrics.json").read_text())
        # 9 test images: one image either way is within seed noise.
        assert abs(metrics["accuracy"] - expected) <= 1 / 9 + 1e-9, (done, metrics["accuracy"])
    image = (colour_folder / "red" / "000.png").read_bytes()
    served = serve_in_fresh_process(runs[-1] / "saved_model", image_bytes=[image])
    assert served["label"][0] == b"red"
    print(f"kill -9: {kills} kills ({killed_in}), {finished} run(s) resumed to the end, "
          f"{checked} file checks, nothing half-written")
    assert len(killed_in) >= 6, killed_in
