"""Head-only stage: cached backbone features vs the plain Keras loop.

Prints a table and writes it as JSON. Both runs start from the same
weights, see the same data and run the same epochs; the ratio is measured
in this run, on this machine.

    python benchmarks/head_stage.py --task images --per-class 30 --epochs 10
    python benchmarks/head_stage.py --task text --per-class 30 --epochs 10
"""

import argparse
import json

from tfx_transfer import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["images", "text"], default="images")
    parser.add_argument("--per-class", type=int, default=30, help="examples per class per split")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--sequence-length", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of the one pass and the cached stage; the fastest counts")
    parser.add_argument("--json", default="head_stage.json", help="where to write the result")
    args = parser.parse_args()
    result = bench.head_stage(
        args.task, per_class=args.per_class, epochs=args.epochs,
        image_size=args.image_size, sequence_length=args.sequence_length,
        repeats=args.repeats,
    )
    print(bench.format_table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
