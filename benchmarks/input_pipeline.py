"""Image input pipeline throughput against the backbone's, in the same run.

    python benchmarks/input_pipeline.py --per-class 30
"""

import argparse
import json

from tfx_transfer import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30, help="training images per class")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--json", default="input_pipeline.json", help="where to write the result")
    args = parser.parse_args()
    result = bench.input_pipeline(per_class=args.per_class, image_size=args.image_size)
    print(bench.format_table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
