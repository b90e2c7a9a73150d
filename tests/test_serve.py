"""The REST server against TF Serving's API: every route, both forms, every error, under load."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import bomb_png, lite0_classifier
from test_export import png_bytes
from tfx_transfer import export, tasks
from tfx_transfer.config import DataConfig, RunConfig
from tfx_transfer.data import pipeline
from tfx_transfer.serve import ModelServer

SIZE = 32
CLASSES = ["ant", "bee", "cat"]
TAGS = ["O", "B-loc", "I-loc", "B-person", "I-person"]


def _export(task_name, class_names, folder):
    """Exports an (untrained) classifier of a task the way a run does; returns (model, dir)."""
    task = tasks.get_task(task_name)
    keras.utils.set_random_seed(0)
    if task_name == "images":
        classifier = lite0_classifier(len(class_names), SIZE)
    else:
        config = tasks.resolve(RunConfig(task=task_name, data=DataConfig(sequence_length=16)))
        classifier = task.build_classifier(task.prepare_backbone(config), len(class_names),
                                           config.model)
    export.export_run(classifier.model, task.serving_fn(classifier, class_names), class_names,
                      folder, track=task.export_objects(classifier))
    return classifier.model, folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    model, run_dir = _export("images", CLASSES, tmp_path_factory.mktemp("images"))
    server = ModelServer(run_dir, name="fashion", port=0, batching=True, batch_timeout_s=0.05,
                         max_request_bytes=1 << 20).start()
    yield model, run_dir, server
    server.close()


def call(server, path, body=None, raw=None):
    """(status, JSON answer) of a GET (no body) or POST to the server."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(server.url + path, data=data,
                                     method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def b64(blob):
    return {"b64": base64.b64encode(blob).decode()}


def expected_probabilities(model, blobs):
    return model.predict(tf.stack([pipeline.decode_and_resize(b, SIZE) for b in blobs]),
                         verbose=0)


def test_status_and_metadata_are_tf_servings(images):
    _, _, server = images
    for path in ("/v1/models/fashion", "/v1/models/fashion/versions/1"):
        status, body = call(server, path)
        assert status == 200
        assert body == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                  "status": {"error_code": "OK",
                                                             "error_message": ""}}]}
    status, body = call(server, "/v1/models/fashion/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "fashion", "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    image_input = signature["inputs"]["image_bytes"]
    assert image_input["dtype"] == "DT_STRING"
    assert image_input["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    assert signature["outputs"]["label"]["dtype"] == "DT_STRING"


def test_predict_in_both_forms_equals_the_in_process_model(images):
    model, _, server = images
    blobs = [png_bytes(0), png_bytes(1, mode="L"), png_bytes(2, size=(300, 120))]
    expected = expected_probabilities(model, blobs)
    labels = [CLASSES[i] for i in expected.argmax(-1)]

    status, body = call(server, "/v1/models/fashion:predict",
                        {"instances": [b64(blob) for blob in blobs]})
    assert status == 200, body
    np.testing.assert_allclose([row["probabilities"] for row in body["predictions"]],
                               expected, atol=1e-5)
    assert [row["label"] for row in body["predictions"]] == labels
    # Named instances, a version in the path and the signature by name.
    status, named = call(server, "/v1/models/fashion/versions/1:predict", {
        "signature_name": "serving_default",
        "instances": [{"image_bytes": b64(blob)} for blob in blobs]})
    assert status == 200 and named == body

    status, body = call(server, "/v1/models/fashion:predict",
                        {"inputs": {"image_bytes": [b64(blob) for blob in blobs]}})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"]["probabilities"], expected, atol=1e-5)
    assert body["outputs"]["label"] == labels


ERRORS = [
    # (path, raw body, status, words the error must hold)
    ("/v1/models/fashion:predict", b"{not json", 400, "JSON Parse error"),
    ("/v1/models/fashion:predict", b'{"instances": [], "inputs": []}', 400, "both"),
    ("/v1/models/fashion:predict", b'{"signature_name": ""}', 400, "neither"),
    ("/v1/models/fashion:predict", b'{"instances": [{"pixels": {"b64": "AAAA"}}]}', 400,
     "unknown input name"),
    ("/v1/models/fashion:predict", b'{"instances": [{"b64": "@@not base64@@"}]}', 400,
     "base64"),
    ("/v1/models/fashion:predict", b'{"instances": [{"b64": "aGVsbG8gd29ybGQ="}]}', 400,
     "image"),
    ("/v1/models/fashion:predict", b'{"instances": [{"b64": "' + base64.b64encode(
        bomb_png(30000, 30000)) + b'"}]}', 400, "decompression bomb"),
    ("/v1/models/fashion:predict", b'{"instances": [3.5]}', 400, "expected a string"),
    ("/v1/models/fashion:predict", b'[1, 2]', 400, "JSON object"),
    ("/v1/models/nosuch:predict", b'{"instances": [{"b64": "AAAA"}]}', 404, "nosuch"),
    ("/v1/models/fashion/versions/7:predict", b'{"instances": [{"b64": "AAAA"}]}', 404,
     "Specific(fashion, 7)"),
    ("/v1/models/fashion:predict",
     b'{"signature_name": "nosuch", "instances": [{"b64": "AAAA"}]}', 404, "nosuch"),
    ("/v1/models/fashion:classify", b'{"instances": [{"b64": "AAAA"}]}', 400, "predict"),
    ("/v1/models/fashion:predict", b"x" * (2 << 20), 413, "over the limit"),
    ("/v1/models/nosuch", None, 404, "nosuch"),
    ("/v1/models/fashion/versions/2/metadata", None, 404, "Specific(fashion, 2)"),
    ("/v2/anything", None, 404, "Malformed request"),
]


@pytest.mark.parametrize("path, raw, status, words", ERRORS,
                         ids=[f"{status}-{words}" for _, _, status, words in ERRORS])
def test_every_bad_request_gets_its_status_and_a_named_error(images, path, raw, status, words):
    _, _, server = images
    got, body = call(server, path, raw=raw) if raw is not None else call(server, path)
    assert got == status, body
    assert set(body) == {"error"} and words in body["error"], body
    # The server goes on answering good requests.
    assert call(server, "/v1/models/fashion")[0] == 200


def test_concurrent_requests_are_batched_and_a_bad_one_fails_alone(images):
    model, _, server = images
    blobs = [png_bytes(seed) for seed in range(8)]
    expected = expected_probabilities(model, blobs)
    bodies = [{"instances": [b64(blob)]} for blob in blobs] + [
        {"instances": [b64(b"not an image at all")]}]
    answers = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def client(index):
        start.wait()
        answers[index] = call(server, "/v1/models/fashion:predict", bodies[index])

    calls_before = server.batcher.calls
    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, (status, body) in enumerate(answers[:-1]):
        assert status == 200, body
        np.testing.assert_allclose(body["predictions"][0]["probabilities"], expected[index],
                                   atol=1e-5)
    assert answers[-1][0] == 400 and "image" in answers[-1][1]["error"]
    # Nine requests arrived within the 50 ms window: fewer calls than requests,
    # plus the reruns one by one of the batch the bad image broke.
    assert server.batcher.calls - calls_before < 2 * len(bodies)


@pytest.fixture(scope="module")
def text_and_tokens(tmp_path_factory):
    text = _export("text", CLASSES, tmp_path_factory.mktemp("text"))
    tokens = _export("tokens", TAGS, tmp_path_factory.mktemp("tokens"))
    servers = [ModelServer(run_dir, name=name, port=0).start()
               for name, (_, run_dir) in (("tickets", text), ("ner", tokens))]
    yield text, tokens, servers
    for server in servers:
        server.close()


def test_text_and_tokens_answer_as_their_signatures(text_and_tokens):
    text, tokens, (text_server, token_server) = text_and_tokens
    sentences = ["the parcel never arrived", "naïve café — ünïcödé 🎉", ""]
    for (_, run_dir), server, name in ((text, text_server, "tickets"),
                                       (tokens, token_server, "ner")):
        serve = export.load_serving_model(run_dir).signatures["serving_default"]
        expected = {key: value.numpy() for key, value in serve(text=tf.constant(sentences)).items()}
        status, body = call(server, f"/v1/models/{name}:predict", {"inputs": sentences})
        assert status == 200, body
        outputs = body["outputs"]
        assert set(outputs) == set(expected)
        for key, value in expected.items():
            if value.dtype == object:
                assert outputs[key] == [[w.decode() for w in row] if value.ndim > 1
                                        else row.decode() for row in value]
            else:
                np.testing.assert_allclose(outputs[key], value, atol=1e-5)
    # Token outputs are padded to the longest sentence in a call: not batched.
    assert not token_server.servable.batchable("") and text_server.servable.batchable("")


@pytest.mark.parametrize("which", ["images", "text", "tokens"])
def test_saved_model_cli_shows_the_serving_signature(images, text_and_tokens, which):
    text, tokens, _ = text_and_tokens
    run_dir = {"images": images[1], "text": text[1], "tokens": tokens[1]}[which]
    shown = subprocess.run(["saved_model_cli", "show", "--dir", str(run_dir / "saved_model"),
                            "--tag_set", "serve", "--signature_def", "serving_default"],
                           capture_output=True, text=True, timeout=120, check=True).stdout
    name = "image_bytes" if which == "images" else "text"
    assert f"inputs['{name}'] tensor_info:" in shown
    assert "dtype: DT_STRING" in shown and "shape: (-1)" in shown
    outputs = {"images": ["probabilities", "label"], "text": ["probabilities", "label"],
               "tokens": ["tags", "words", "tag_probabilities", "num_words"]}[which]
    for output in outputs:
        assert f"outputs['{output}'] tensor_info:" in shown
    assert "Method name is: tensorflow/serving/predict" in shown


def test_the_serve_command_serves_a_run_directory_until_stopped(images):
    _, run_dir, _ = images
    process = subprocess.Popen(
        [sys.executable, "-m", "tfx_transfer", "serve", str(run_dir), "--port", "0",
         "--name", "fashion", "--no-batching"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        lines = []
        while not any("Serving fashion version 1" in line for line in lines):
            line = process.stderr.readline()
            assert line or process.poll() is None, "".join(lines)
            lines.append(line)
        url = re.search(r"at (http://127\.0\.0\.1:\d+)/v1/models/fashion", "".join(lines)).group(1)
        with urllib.request.urlopen(url + "/v1/models/fashion:predict", timeout=60, data=json.dumps(
                {"instances": [b64(png_bytes(0))]}).encode()) as answer:
            predictions = json.loads(answer.read())["predictions"]
        assert predictions[0]["label"] in CLASSES and len(predictions[0]["probabilities"]) == 3
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: the server closes its port and exits.
        # communicate, not wait: it keeps reading stderr, so a full pipe cannot block the exit.
        _, rest = process.communicate(timeout=180)
        assert process.returncode == 0, rest[-3000:]


def test_grpc_answers_the_official_stubs_as_the_model_does(images):
    grpc = pytest.importorskip("grpc")
    from tensorflow_serving.apis import (get_model_metadata_pb2, predict_pb2,
                                         prediction_service_pb2_grpc)

    model, run_dir, _ = images
    server = ModelServer(run_dir, name="fashion", port=0, grpc_port=0).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        blobs = [png_bytes(0), png_bytes(3, size=(80, 33))]
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "fashion"
        request.model_spec.signature_name = "serving_default"
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(blobs))
        response = stub.Predict(request, timeout=60)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]),
                                   expected_probabilities(model, blobs), atol=1e-5)
        assert response.model_spec.version.value == 1

        request.output_filter.append("label")
        assert list(stub.Predict(request, timeout=60).outputs) == ["label"]

        metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
        metadata_request.model_spec.name = "fashion"
        metadata_request.metadata_field.append("signature_def")
        metadata = stub.GetModelMetadata(metadata_request, timeout=60)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        metadata.metadata["signature_def"].Unpack(signatures)
        signature = signatures.signature_def["serving_default"]
        assert signature.method_name == "tensorflow/serving/predict"
        assert signature.inputs["image_bytes"].dtype == tf.string.as_datatype_enum

        for change, code in [(lambda r: setattr(r.model_spec, "name", "nosuch"), "NOT_FOUND"),
                             (lambda r: r.model_spec.version.__setattr__("value", 9),
                              "NOT_FOUND"),
                             (lambda r: r.inputs["pixels"].CopyFrom(tf.make_tensor_proto([1.0])),
                              "INVALID_ARGUMENT"),
                             (lambda r: r.inputs["image_bytes"].CopyFrom(
                                 tf.make_tensor_proto([b"not an image"])), "INVALID_ARGUMENT")]:
            bad = predict_pb2.PredictRequest()
            bad.CopyFrom(request)
            change(bad)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(bad, timeout=60)
            assert raised.value.code().name == code, raised.value.details()
    finally:
        channel.close()
        server.close()
