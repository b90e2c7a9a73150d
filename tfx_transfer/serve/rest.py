"""A server for exported runs that speaks TF Serving's REST API.

Routes, as in TF Serving's `api_rest.md`:

- `GET  /v1/models/NAME[/versions/N]`: the version's status;
- `GET  /v1/models/NAME[/versions/N]/metadata`: its signature_def map;
- `POST /v1/models/NAME[/versions/N]:predict`: row ("instances") or
  columnar ("inputs") requests, with an optional "signature_name".

Errors are `{"error": "..."}` with 400 (a bad request), 404 (no such
model, version or signature), 413 (a body over `max_request_bytes`) or 500.
Each request runs in its own thread; a failing one never stops the server
or touches a request beside it.
"""

import http.server
import json
import re
import threading

from tfx_transfer.serve.batching import Batcher
from tfx_transfer.serve.json_tensors import format_response, parse_request
from tfx_transfer.serve.servable import Servable, ServingError, find_versions

MAX_REQUEST_BYTES = 32 * 1024 * 1024
# How much of a too-large body is read (and dropped) before answering 413.
_DRAIN_BYTES = 64 * 1024 * 1024
_PREDICT = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:(predict|classify|regress)",
                      re.IGNORECASE)
_STATUS = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+))?(?:/(metadata))?",
                     re.IGNORECASE)


class ModelServer:
    """Serves the newest version of an exported model over HTTP, as TF Serving would.

    Args:
        path: str or Path. A run directory, a SavedModel folder, or a TF
            Serving model base path (`NAME/1/`, `NAME/2/`, ...: the highest
            version is served, as TF Serving's default policy does).
        name: str. The model name in the URLs.
        host: str. Address to bind; 127.0.0.1 unless you mean to expose it.
        port: int. 0 picks a free port (see `.port`).
        batching: bool. Merge concurrent small requests into one model call
            (off by default, as in TF Serving: on 2 CPU cores it gained
            nothing beyond the noise; see benchmarks/serving_load.py).
        max_batch_size: int. Most rows in one batched call.
        batch_timeout_s: float. Longest a request waits for others to join it.
        max_request_bytes: int. Larger request bodies are refused (413;
            over gRPC, RESOURCE_EXHAUSTED).
        grpc_port: int or None. Also serve TF Serving's gRPC
            PredictionService there (needs the `grpc` extra); 0 picks a port.

    Example:

    >>> server = ModelServer("runs/fashion", name="fashion", port=0).start()
    >>> requests.get(f"{server.url}/v1/models/fashion").json()["model_version_status"][0]["state"]
    'AVAILABLE'
    >>> server.close()
    """

    def __init__(self, path, name="model", host="127.0.0.1", port=8501, batching=False,
                 max_batch_size=32, batch_timeout_s=0.002, max_request_bytes=MAX_REQUEST_BYTES,
                 grpc_port=None):
        version, folder = max(find_versions(path).items())
        self.servable = Servable(folder, name, version)
        self.name, self.max_request_bytes = name, max_request_bytes
        self.batcher = Batcher(self.servable, max_batch_size, batch_timeout_s) if batching else None
        self._http = http.server.ThreadingHTTPServer((host, port), _handler_for(self))
        # Ctrl-C must not wait for a client that keeps its connection open.
        self._http.daemon_threads, self._http.block_on_close = True, False
        self._thread = None
        self._grpc, self.grpc_port = None, None
        if grpc_port is not None:
            try:
                from tfx_transfer.serve import grpc_service
            except ImportError as error:
                self._http.server_close()
                raise RuntimeError("gRPC serving needs TF Serving's protos and stubs: "
                                   "pip install 'tfx_transfer[grpc]' "
                                   f"(tensorflow-serving-api); {error}") from error
            self._grpc, self.grpc_port = grpc_service.start_grpc_server(
                self.servable, self._run_function(), host, grpc_port, max_request_bytes)

    @property
    def port(self):
        return self._http.server_address[1]

    @property
    def url(self):
        host = self._http.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self):
        """Serves in a background thread; returns self."""
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Serves in this thread until interrupted (Ctrl-C)."""
        try:
            self._http.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self):
        """Stops serving and releases the port."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
            self._grpc = None
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None

    def handle(self, method, path, body):
        """Answers one request; returns (HTTP status, JSON-able body)."""
        try:
            return 200, self._route(method, path.split("?", 1)[0], body)
        except ServingError as error:
            return error.status, {"error": str(error)}
        except Exception as error:  # noqa: BLE001 - one request's failure, never the server's.
            return 500, {"error": f"{type(error).__name__}: {error}"}

    def _route(self, method, path, body):
        if method == "POST" and (match := _PREDICT.fullmatch(path)):
            name, version, verb = match.groups()
            self._check_model(name, version)
            if verb.lower() != "predict":
                raise ServingError(f"{verb} is not offered: this model has predict "
                                   "signatures only (use :predict).")
            signature, form, inputs = parse_request(body, self.servable.input_specs)
            return format_response(self._run_function()(signature, inputs), form)
        if method == "GET" and (match := _STATUS.fullmatch(path)):
            name, version, metadata = match.groups()
            if not name:
                raise ServingError("Missing model name in request.")
            self._check_model(name, version)
            return self.servable.metadata() if metadata else self.servable.status()
        raise ServingError(f"Malformed request: {method} {path}",
                           status=400 if path.lower().startswith("/v1/") else 404)

    def _run_function(self):
        return self.batcher.run if self.batcher else self.servable.run

    def _check_model(self, name, version):
        if name != self.name:
            raise ServingError(f"Servable not found for request: Latest({name})", status=404)
        if version is not None and int(version) != self.servable.version:
            raise ServingError(f"Servable not found for request: Specific({name}, {version})",
                               status=404)


def _handler_for(server):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self._answer(*server.handle("GET", self.path, b""))

        def do_POST(self):
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                return self._answer(411, {"error": "A POST needs a Content-Length header."})
            if int(length) > server.max_request_bytes:
                # Read and dropped, up to a bound, so that the client, still
                # sending, is not reset before it reads the answer.
                self._drain(min(int(length), server.max_request_bytes + _DRAIN_BYTES))
                self.close_connection = True
                return self._answer(413, {"error": (
                    f"Request body of {length} bytes is over the limit of "
                    f"{server.max_request_bytes} bytes (--max-request-bytes).")})
            self._answer(*server.handle("POST", self.path, self.rfile.read(int(length))))

        def _drain(self, count):
            while count > 0 and (chunk := self.rfile.read(min(count, 1 << 16))):
                count -= len(chunk)

        def _answer(self, status, body):
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's name.
            pass  # One line per request would drown the console under load.

    return Handler
