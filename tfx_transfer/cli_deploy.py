"""Command line for exported runs: `predict`, `evaluate`, `export` and `serve`.

Like `tfx_transfer.cli`, the commands only turn flags into calls; the
modules that need TensorFlow are imported when a command runs.
"""

import json
import sys
from pathlib import Path

import click

from tfx_transfer import startup
from tfx_transfer.cli_errors import Command

CONTEXT = {"help_option_names": ["-h", "--help"]}
# More inputs than fit on a screen get a progress bar (on stderr).
_PROGRESS_FROM = 25


@click.command("predict", cls=Command, context_settings=CONTEXT)
@click.argument("model_path", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many labels to give per input.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON list of results instead of a line per input.")
def predict_command(model_path, inputs, top_k, as_json):
    """Classify images or texts, or tag entities, with an exported model.

    MODEL_PATH is a run directory or a SavedModel folder. INPUTS are image
    files or folders of them for an image model, texts for a text model,
    sentences for a token model. They go through the SavedModel's serving
    signature as raw bytes or strings, as TF Serving would receive them.
    A bad input is named with its reason and the others are still
    classified; the exit code is then 1.
    """
    predict = startup.import_module("tfx_transfer.predict")
    try:
        predictor = predict.Predictor(model_path)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error
    names = predict.expand_inputs(inputs) if predictor.takes_images else list(inputs)
    results = []
    with click.progressbar(names, label="Predicting", file=sys.stderr,
                           hidden=len(names) < _PROGRESS_FROM) as bar:
        for result in predictor.run_all(bar, top_k):
            results.append(result)
            if not as_json and len(names) < _PROGRESS_FROM:
                _echo(predict, result)
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    elif len(names) >= _PROGRESS_FROM:
        for result in results:
            _echo(predict, result)
    failed = [result for result in results if "error" in result]
    if failed:
        click.echo(f"{len(failed)} of {len(results)} input(s) failed.", err=True)
        sys.exit(1)


def _echo(predict, result):
    if "error" in result:
        click.echo(f"{result['input']}: error: {result['error']}", err=True)
    else:
        click.echo(predict.format_result(result))


@click.command("evaluate", cls=Command, context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data_path", type=click.Path(exists=True), required=True,
              help="New labelled data in the run's task format: a folder per class, a "
                   "CSV/TSV/JSONL table, or a CoNLL file.")
@click.option("--skip-unknown-labels", is_flag=True,
              help="Leave out (and count) examples whose label the model does not know.")
def evaluate_command(run_dir, data_path, skip_unknown_labels):
    """Score a finished run's exported model on new labelled data.

    Every example goes through the SavedModel's serving signature, as TF
    Serving would run it. Writes RUN_DIR/evaluations/<timestamp>/ with
    metrics.json, report.txt and confusion_matrix.png, and prints the report.
    """
    new_data = startup.import_module("tfx_transfer.evaluate.new_data")
    try:
        evaluation = new_data.evaluate_run(run_dir, data_path, skip_unknown_labels)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(evaluation.report)
    click.echo(f"Written to {evaluation.directory}")


@click.command("export", cls=Command, context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "export_format", type=click.Choice(["savedmodel", "tflite"]),
              default="savedmodel", show_default=True,
              help="savedmodel: copy the SavedModel into --serving-layout; tflite: write "
                   "RUN_DIR/tflite/ and score each variant on the run's test split.")
@click.option("--quantize", type=click.Choice(["all", "float32", "dynamic", "int8"]),
              default="all", show_default=True,
              help="TFLite variant(s): float32, dynamic-range, or full-integer int8 (uint8 "
                   "input, calibrated on training images).")
@click.option("--serving-layout", type=click.Path(file_okay=False),
              help="Write TF Serving's layout here: DIR/NAME/VERSION/saved_model.pb.")
@click.option("--name", default="model", show_default=True, help="Model name in the layout.")
@click.option("--version", type=click.IntRange(min=1), default=1, show_default=True,
              help="Version folder in the layout.")
def export_command(run_dir, export_format, quantize, serving_layout, name, version):
    """Export a finished run: TF Serving's folder layout, or TFLite models.

    TFLite (image runs; needs pip install 'tfx_transfer[tflite]'): three
    tensor-in variants with the normalisation inside, each scored through
    ai-edge-litert's interpreter on the run's test split next to the
    SavedModel; the figures go to tflite/export_report.json.
    """
    if export_format == "savedmodel":
        if not serving_layout:
            raise click.UsageError("--format savedmodel needs --serving-layout DIR (the run "
                                   "already holds its SavedModel in saved_model/).")
        export = startup.import_module("tfx_transfer.export")
        try:
            target = export.write_serving_layout(run_dir, serving_layout, name, version)
        except (FileNotFoundError, FileExistsError) as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"Wrote {target}; serve it with: docker run -p 8501:8501 -v "
                   f"\"{Path(serving_layout).resolve() / name}:/models/{name}\" -e "
                   f"MODEL_NAME={name} tensorflow/serving")
        return
    tflite = startup.import_module("tfx_transfer.tflite")
    variants = tflite.VARIANTS if quantize == "all" else (quantize,)
    try:
        report = tflite.export_run(run_dir, variants)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    except ImportError as error:
        raise click.ClickException(f"TFLite scoring needs ai-edge-litert: pip install "
                                   f"'tfx_transfer[tflite]' ({error})") from error
    click.echo(tflite.format_report(report))
    click.echo(f"Written to {Path(run_dir) / tflite.TFLITE_DIR}")


@click.command("serve", cls=Command, context_settings=CONTEXT)
@click.argument("model_path", type=click.Path(exists=True, file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="REST port (TF Serving's is 8501); 0 picks a free one.")
@click.option("--grpc-port", type=click.IntRange(0, 65535),
              help="Also serve TF Serving's gRPC PredictionService here (TF Serving's is "
                   "8500); needs pip install 'tfx_transfer[grpc]'.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Pass 0.0.0.0 only to expose the server on purpose.")
@click.option("--name", default="model", show_default=True,
              help="Model name in the URLs: /v1/models/NAME:predict.")
@click.option("--batching/--no-batching", default=False, show_default=True,
              help="Merge concurrent small requests into one model call (as TF Serving's "
                   "--enable_batching; try it on a GPU, where one call of 32 rows costs "
                   "about what one row does).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Most rows in one batched model call.")
@click.option("--batch-timeout-ms", type=click.FloatRange(min=0), default=2.0,
              show_default=True, help="Longest a request waits for others to join its batch.")
@click.option("--max-request-bytes", type=click.IntRange(min=1),
              default=32 * 1024 * 1024, show_default=True,
              help="Larger request bodies are refused with 413.")
def serve_command(model_path, port, grpc_port, host, name, batching, max_batch_size,
                  batch_timeout_ms, max_request_bytes):
    """Serve an exported model over TF Serving's REST API.

    MODEL_PATH is a run directory, a SavedModel folder, or a TF Serving
    model base path (NAME/1/, NAME/2/: the highest version is served).
    Routes: GET /v1/models/NAME, GET /v1/models/NAME/metadata and
    POST /v1/models/NAME:predict with {"instances": [...]} or
    {"inputs": ...}; send image bytes as {"b64": "..."}.
    """
    serve = startup.import_module("tfx_transfer.serve")
    try:
        server = serve.ModelServer(
            model_path, name=name, host=host, port=port, batching=batching,
            max_batch_size=max_batch_size, batch_timeout_s=batch_timeout_ms / 1000,
            max_request_bytes=max_request_bytes, grpc_port=grpc_port)
    except (FileNotFoundError, OSError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    servable = server.servable
    inputs = ", ".join(f"{key} ({spec.dtype.name})"
                       for key, spec in servable.input_specs("").items())
    click.echo(f"Serving {name} version {servable.version} ({servable.path}) at "
               f"{server.url}/v1/models/{name}\n  serving_default takes {inputs}; "
               f"batching {'on' if batching else 'off'}. Ctrl-C stops.", err=True)
    if server.grpc_port is not None:
        click.echo(f"  gRPC PredictionService (Predict, GetModelMetadata) at "
                   f"{host}:{server.grpc_port}", err=True)
    click.echo(f"  Try: curl {server.url}/v1/models/{name}/metadata", err=True)
    server.serve_forever()
