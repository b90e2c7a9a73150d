"""Serving exported runs: TF Serving's REST API, with server-side batching."""

from tfx_transfer.serve.rest import MAX_REQUEST_BYTES, ModelServer
from tfx_transfer.serve.servable import Servable, ServingError, find_versions

__all__ = ["MAX_REQUEST_BYTES", "ModelServer", "Servable", "ServingError", "find_versions"]
