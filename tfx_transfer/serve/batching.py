"""Server-side batching: small requests that arrive together share one model call.

As TF Serving's batching does (`--enable_batching`): a request waits at most
`timeout_s` for others to join it, and a call takes at most
`max_batch_size` rows. Each request gets exactly its own rows back. If the
shared call fails (one request's image does not decode, say), every
request in it runs again on its own, so a bad request fails alone.
"""

import concurrent.futures
import threading
import time

import numpy as np

from tfx_transfer.serve.servable import rows_of


class Batcher:
    """Merges concurrent calls of a `Servable`'s signature into batches.

    Args:
        servable: `tfx_transfer.serve.servable.Servable`.
        max_batch_size: int. Most rows in one model call.
        timeout_s: float. Longest a request waits for others to join it.
        num_threads: int. Batches run at once.

    Example:

    >>> batcher = Batcher(servable, max_batch_size=32, timeout_s=0.002)
    >>> batcher.run("serving_default", {"text": np.array([b"great"], object)})
    {'label': array([b'positive'], dtype=object), 'probabilities': array([[0.1, 0.9]])}
    """

    def __init__(self, servable, max_batch_size=32, timeout_s=0.002, num_threads=2):
        self.servable = servable
        self.max_batch_size, self.timeout_s = max_batch_size, timeout_s
        self._queue = []  # (signature, inputs, rows, future), oldest first.
        self._ready = threading.Condition()
        self._closed = False
        self.calls = 0  # Model calls made, to tell batching apart in tests and benchmarks.
        self._threads = [threading.Thread(target=self._loop, daemon=True,
                                          name=f"batcher-{i}") for i in range(num_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, signature, inputs):
        """Runs `inputs` ({name: array}) through `signature`, batched with others when they come.

        Returns:
            {output name: NumPy array} for these rows only.

        Raises:
            ServingError: as `Servable.run` does.
        """
        rows = rows_of(inputs)
        if rows > self.max_batch_size or not self.servable.batchable(signature):
            self.calls += 1
            return self.servable.run(signature, inputs)
        future = concurrent.futures.Future()
        with self._ready:
            self._queue.append((signature, inputs, rows, future))
            self._ready.notify()
        return future.result()

    def close(self):
        """Stops the batching threads once the queued requests are done."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _loop(self):
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = [self._queue.pop(0)]
                deadline = time.monotonic() + self.timeout_s
                while sum(job[2] for job in batch) < self.max_batch_size:
                    joined = self._take_compatible(batch)
                    if joined:
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        break
                    self._ready.wait(remaining)
            self._execute(batch)

    def _take_compatible(self, batch):
        """Moves the first queued job that fits into `batch`; returns whether one did."""
        signature, inputs = batch[0][0], batch[0][1]
        room = self.max_batch_size - sum(job[2] for job in batch)
        for index, job in enumerate(self._queue):
            if job[0] == signature and job[2] <= room and all(
                    np.shape(job[1][key])[1:] == np.shape(inputs[key])[1:] for key in inputs):
                batch.append(self._queue.pop(index))
                return True
        return False

    def _execute(self, batch):
        if len(batch) > 1:
            signature = batch[0][0]
            merged = {key: np.concatenate([job[1][key] for job in batch])
                      for key in batch[0][1]}
            try:
                self.calls += 1
                outputs = self.servable.run(signature, merged)
            except Exception:  # noqa: BLE001 - each request then runs, and fails, alone.
                outputs = None
            if outputs is not None:
                start = 0
                for _, _, rows, future in batch:
                    future.set_result({key: value[start:start + rows]
                                       for key, value in outputs.items()})
                    start += rows
                return
        for signature, inputs, _, future in batch:
            try:
                self.calls += 1
                future.set_result(self.servable.run(signature, inputs))
            except Exception as error:  # noqa: BLE001 - handed to the waiting request.
                future.set_exception(error)
