"""The benchmarks run, time both sides, and measure what they say they measure.

Timings are never asserted (a shared CPU makes them swing); what is
checked is that each benchmark ran the work it reports on.
"""

from click.testing import CliRunner

from tfx_transfer import bench, cli


def test_head_stage_benchmark_trains_both_loops_for_real():
    result = bench.head_stage("images", per_class=3, epochs=2, image_size=64, repeats=2)
    assert result["train_examples"] == 30 and result["val_examples"] == 30
    # No early stopping: both loops run every epoch.
    assert result["plain_epochs_run"] == result["cached_epochs_run"] == 2
    # Shuffling and dropout differ, so the accuracies are close rather than
    # equal (tests/test_features.py checks that equal inputs give equal heads).
    assert abs(result["plain_val_accuracy"] - result["cached_val_accuracy"]) < 0.35
    for key in ("one_backbone_pass_s", "plain_s", "cached_s"):
        assert result[key] > 0
    assert "speedup" in bench.format_table(result)


def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        cli.main, ["bench", "--task", "images", "--per-class", "2", "--epochs", "1",
                   "--image-size", "32", "--json", str(out)])
    assert result.exit_code == 0, result.output
    for key in ("cached_over_one_pass", "pipeline_over_backbone", "p50_ratio",
                "float32_xla_over_float32"):
        assert key in result.output
    assert out.read_text().startswith("[")


def test_input_pipeline_benchmark_times_both_sides():
    result = bench.input_pipeline(per_class=2, image_size=64)
    assert result["train_examples"] == 20 and result["image_size"] == 64
    assert result["pipeline_cached_images_per_s"] > 0 and result["backbone_images_per_s"] > 0


def test_serving_latency_benchmark_times_saved_model_and_backbone():
    result = bench.serving_latency(image_size=64, repeats=3, batch_size=4)
    assert result["image_size"] == 64 and result["batch_size"] == 4
    assert result["saved_model_p95_ms"] >= result["saved_model_p50_ms"] > 0
    assert result["backbone_p95_ms"] >= result["backbone_p50_ms"] > 0
    assert result["saved_model_batch_images_per_s"] > 0


def test_precision_benchmark_runs_the_same_model_in_each_setting():
    result = bench.precision_and_xla("images", batch_size=2, repeats=1, image_size=32)
    # Same weights, same inputs: XLA computes the same probabilities, mixed
    # precision nearly so. A benchmark that timed another model would not.
    assert result["float32_max_abs_diff"] == 0.0
    assert result["float32_xla_max_abs_diff"] < 1e-4
    for name in ("mixed_float16", "mixed_bfloat16"):
        assert 0.0 < result[f"{name}_max_abs_diff"] < 0.1, result
    for name in ("float32", "mixed_float16", "mixed_bfloat16", "float32_xla"):
        assert result[f"{name}_examples_per_s"] > 0
