"""Load on the REST server over loopback: latency and throughput, batching on vs off.

An image model is exported (EfficientNet-Lite0 with a fresh head, the
bundled demo's class names) and served twice in this run, with server-side
batching on and off. Each time N client threads send R predict requests
each, of one PNG apiece; every 10th request is garbage (bytes that are no
image, or invalid JSON), which must get a 400 while every good request
gets a 200. Printed: p50/p99 latency of the good requests, requests per
second, model calls made, and the ratios of batching on over off.

    python benchmarks/serving_load.py --clients 4 --requests 200
"""

import argparse
import base64
import io
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import lite0_classifier  # noqa: E402 - the tests' real small model.
from tfx_transfer import export, tasks  # noqa: E402
from tfx_transfer.serve import ModelServer  # noqa: E402


def _png(seed, size=64):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _bodies(count, seed):
    """Request bodies: one PNG each, every 10th a garbage request (expected 400)."""
    bodies = []
    for i in range(count):
        if i % 10 == 9:
            bad = b"{not json" if i % 20 == 19 else json.dumps(
                {"instances": [{"b64": base64.b64encode(b"no image here").decode()}]}).encode()
            bodies.append((bad, 400))
        else:
            image = base64.b64encode(_png(seed * 100000 + i)).decode()
            bodies.append((json.dumps({"instances": [{"b64": image}]}).encode(), 200))
    return bodies


def load(server, clients, requests):
    """Runs the clients against `server`; returns the measurements."""
    url = f"{server.url}/v1/models/bench:predict"
    work = [_bodies(requests, seed) for seed in range(clients)]
    latencies, failures, lock = [], [], threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(bodies):
        start.wait()
        for body, expected in bodies:
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=body),
                                            timeout=120) as answer:
                    status = answer.status
                    answer.read()
            except urllib.error.HTTPError as error:
                status = error.code
                error.read()
            took = time.perf_counter() - began
            with lock:
                if status != expected:
                    failures.append((expected, status))
                elif expected == 200:
                    latencies.append(took)

    threads = [threading.Thread(target=client, args=(bodies,)) for bodies in work]
    for thread in threads:
        thread.start()
    calls_before = server.batcher.calls if server.batcher else 0
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return {
        "requests": clients * requests, "good": len(latencies), "wrong_status": len(failures),
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "requests_per_s": clients * requests / seconds,
        "model_calls": (server.batcher.calls - calls_before) if server.batcher else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="Per client.")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="serving-load-"))
    classes = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
               "bag", "ankle boot"]
    classifier = lite0_classifier(len(classes), args.image_size)
    export.export_run(classifier.model, tasks.get_task("images").serving_fn(classifier, classes),
                      classes, folder)
    rows = {}
    for batching in (False, True):
        server = ModelServer(folder, name="bench", port=0, batching=batching,
                             batch_timeout_s=args.batch_timeout_ms / 1000).start()
        try:
            load(server, 1, 5)  # Warm-up: the first call traces the signature.
            rows[batching] = load(server, args.clients, args.requests)
        finally:
            server.close()
        row = rows[batching]
        print(f"batching {'on ' if batching else 'off'}: {row['good']} good + "
              f"{row['requests'] - row['good'] - row['wrong_status']} garbage requests, "
              f"{row['wrong_status']} with a wrong status; p50 {row['p50_ms']:.1f} ms, "
              f"p99 {row['p99_ms']:.1f} ms, {row['requests_per_s']:.1f} requests/s"
              + (f", {row['model_calls']} model calls" if row["model_calls"] is not None else ""))
    on, off = rows[True], rows[False]
    print(f"batching on / off: throughput x{on['requests_per_s'] / off['requests_per_s']:.2f}, "
          f"p50 x{on['p50_ms'] / off['p50_ms']:.2f}, p99 x{on['p99_ms'] / off['p99_ms']:.2f}")
    print(json.dumps({"batching_off": off, "batching_on": on}))


if __name__ == "__main__":
    main()
