"""How accurate is tokensim's cost model? Predicted against measured op times.

Reads the measured tables in ../shared/data (Vidur's per-layer operator
profiles and NVIDIA's kernel tables), imports them into tokensim tables, and
prints for each source, per GPU x model x op class and overall, the median and
p90 absolute relative error of the datasheet roofline, of the calibrated model
fitted with the model (or shape family) held out, and of a calibration carried
to another GPU. Then whole iterations of one layer (Vidur's GEMMs and
elementwise ops, NVIDIA's attention and all-reduce), per GPU, model and kind.
Run: python3 bench/accuracy.py [DATA_DIR] [--source vidur|nvidia]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tokensim.perf import importers, iterations, validate

SOURCES = {
    "vidur": "vidur/data/profiling",
    "nvidia": "nvidia_kernels",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "data", nargs="?", default=str(Path(__file__).parents[1] / ".." / "shared" / "data")
    )
    ap.add_argument("--source", choices=sorted(SOURCES), action="append")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: {data}: no measured data here (the shared data folder)", file=sys.stderr)
        return 2
    parts = []
    for source in args.source or sorted(SOURCES):
        start = time.perf_counter()
        table = importers.load(data / SOURCES[source])
        p = validate.predict(table, progress=lambda s: print(f"  {s}", file=sys.stderr))
        parts.append(p)
        scores = validate.scores(p)
        print(f"## {source}: {len(table)} measured op times\n")
        print(validate.markdown(validate.overall(scores)))
        print(validate.markdown(scores))
        lone = validate.unheld_markdown(p)
        if lone:
            print(lone)
        print(f"({time.perf_counter() - start:.0f} s)\n", file=sys.stderr)
    joined = validate.join(parts)
    its = iterations.compose(joined.table)
    if its:
        scores = iterations.score(joined, its)
        print(f"## whole iterations of one layer: {len(its)}\n")
        print(validate.markdown(validate.overall(scores)))
        print(validate.markdown(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
