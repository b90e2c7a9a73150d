from click.testing import CliRunner

from tfx_transfer import bench, cli


def test_head_stage_benchmark_reports_both_loops():
    result = bench.head_stage("images", per_class=3, epochs=2, image_size=64, repeats=2)
    # Shuffling and dropout differ between the loops, so accuracies are
    # close rather than equal (tests/test_features.py checks equality).
    for key in ("plain_val_accuracy", "cached_val_accuracy"):
        assert 0.0 <= result[key] <= 1.0
    assert result["train_examples"] == 30 and result["val_examples"] == 30
    assert result["epochs"] == 2 and result["repeats"] == 2
    for key in ("one_backbone_pass_s", "plain_s", "cached_s"):
        assert result[key] > 0
    assert result["speedup"] == result["plain_s"] / result["cached_s"]
    assert "speedup" in bench.format_table(result)


def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        cli.main, ["bench", "--task", "images", "--per-class", "2", "--epochs", "1",
                   "--image-size", "64", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "cached_over_one_pass" in result.output
    assert "pipeline_over_backbone" in result.output
    assert "p50_ratio" in result.output
    assert "float32_xla_over_float32" in result.output
    assert out.read_text().startswith("[")


def test_input_pipeline_benchmark_times_both_sides():
    result = bench.input_pipeline(per_class=2, image_size=64)
    assert result["train_examples"] == 20 and result["image_size"] == 64
    assert result["pipeline_over_backbone"] == (
        result["pipeline_cached_images_per_s"] / result["backbone_images_per_s"]
    )


def test_serving_latency_benchmark_times_saved_model_and_backbone():
    result = bench.serving_latency(image_size=64, repeats=3, batch_size=4)
    assert result["image_size"] == 64 and result["batch_size"] == 4
    assert result["saved_model_p95_ms"] >= result["saved_model_p50_ms"] > 0
    assert result["p50_ratio"] == result["saved_model_p50_ms"] / result["backbone_p50_ms"]
    assert result["saved_model_batch_images_per_s"] > 0


def test_precision_benchmark_times_every_setting_against_float32():
    result = bench.precision_and_xla("images", batch_size=2, repeats=1, image_size=32)
    for name in ("mixed_float16", "mixed_bfloat16", "float32_xla"):
        assert result[f"{name}_examples_per_s"] > 0
        assert result[f"{name}_over_float32"] == (
            result[f"{name}_examples_per_s"] / result["float32_examples_per_s"]
        )
