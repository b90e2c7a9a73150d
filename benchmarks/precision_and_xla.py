"""Classifier forward throughput: float32 vs mixed float16/bfloat16 vs XLA, same run.

    python benchmarks/precision_and_xla.py --task images
    python benchmarks/precision_and_xla.py --task text --sequence-length 128
"""

import argparse
import json

from tfx_transfer import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("images", "text"), default="images")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--sequence-length", type=int, default=None)
    parser.add_argument("--json", default="precision_and_xla.json", help="where to write the result")
    args = parser.parse_args()
    result = bench.precision_and_xla(
        task=args.task, batch_size=args.batch_size, repeats=args.repeats,
        image_size=args.image_size, sequence_length=args.sequence_length,
    )
    print(bench.format_table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
