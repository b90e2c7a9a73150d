"""Exported SavedModel latency on one raw JPEG vs the bare backbone, same run.

    python benchmarks/serving_latency.py --repeats 30
"""

import argparse
import json

from tfx_transfer import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default="serving_latency.json", help="where to write the result")
    args = parser.parse_args()
    result = bench.serving_latency(
        image_size=args.image_size, repeats=args.repeats, batch_size=args.batch_size
    )
    print(bench.format_table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
