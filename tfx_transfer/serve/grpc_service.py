"""TF Serving's gRPC `PredictionService` (Predict, GetModelMetadata) for a `Servable`.

Built on the protos and stubs of `tensorflow-serving-api` (the `grpc`
extra), so a client written against TF Serving's official stubs works
unchanged. Classify, Regress and MultiInference answer UNIMPLEMENTED, as
the generated servicer does: a run's models have predict signatures only.
"""

import concurrent.futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfx_transfer.serve.servable import ServingError

# HTTP status of a ServingError -> the gRPC code TF Serving uses for it.
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED, 500: grpc.StatusCode.INTERNAL}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers Predict and GetModelMetadata from one served version.

    Args:
        servable: `tfx_transfer.serve.servable.Servable`.
        run: callable. (signature name, {input: array}) -> {output: array};
            the servable's own `run`, or a `Batcher`'s.
    """

    def __init__(self, servable, run):
        self.servable, self._run = servable, run

    def Predict(self, request, context):  # noqa: N802 - the proto's name.
        try:
            self._check_spec(request.model_spec)
            signature = request.model_spec.signature_name
            specs = self.servable.input_specs(signature)
            unknown = sorted(set(request.inputs) - set(specs))
            missing = sorted(set(specs) - set(request.inputs))
            if unknown or missing:
                raise ServingError(f"Inputs do not match the signature: unknown {unknown}, "
                                   f"missing {missing}; it takes {sorted(specs)}.")
            try:
                inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
            except (TypeError, ValueError) as error:
                raise ServingError(f"Cannot read an input TensorProto: {error}") from error
            outputs = self._run(signature, inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise ServingError(f"output_filter names unknown outputs {unknown}.")
        except ServingError as error:
            context.abort(_CODES.get(error.status, grpc.StatusCode.INTERNAL), str(error))
        response = predict_pb2.PredictResponse()
        self._fill_spec(response.model_spec, request.model_spec.signature_name)
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802 - the proto's name.
        try:
            self._check_spec(request.model_spec)
            fields = set(request.metadata_field)
            if fields != {"signature_def"}:
                raise ServingError(
                    f"Metadata field(s) {sorted(fields - {'signature_def'}) or 'none'} not "
                    'supported: ask for ["signature_def"].')
        except ServingError as error:
            context.abort(_CODES.get(error.status, grpc.StatusCode.INTERNAL), str(error))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_spec(response.model_spec, "")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _check_spec(self, spec):
        if spec.name != self.servable.name:
            raise ServingError(f"Servable not found for request: Latest({spec.name})", 404)
        if spec.HasField("version") and spec.version.value != self.servable.version:
            raise ServingError(f"Servable not found for request: Specific({spec.name}, "
                               f"{spec.version.value})", 404)

    def _fill_spec(self, spec, signature_name):
        spec.name = self.servable.name
        spec.version.value = self.servable.version
        spec.signature_name = signature_name or "serving_default"


def start_grpc_server(servable, run, host, port, max_message_bytes, threads=8):
    """Starts a gRPC server for `servable`; returns (server, bound port)."""
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_message_bytes)]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=threads),
                         options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(servable, run), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"Cannot bind the gRPC port {host}:{port}.")
    server.start()
    return server, bound
