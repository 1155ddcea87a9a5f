"""Size and render time of report.html for 10,000 and 100,000 requests.

    python3 bench/report.py [--repeat N]

Simulates two of bench/speed.py's workloads once, writes their result folders, then renders
each page ``--repeat`` times (default 3) from the folder, as ``tokensim report DIR`` does,
and prints the best time split into reading the folder and drawing the page, with the size
of the page and of the folder's data files.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from speed import CASES  # noqa: E402

import tokensim  # noqa: E402
from tokensim.graph import lower  # noqa: E402
from tokensim.metrics import summarize  # noqa: E402
from tokensim.report import load, write  # noqa: E402
from tokensim.report.page import render  # noqa: E402
from tokensim.sim.run import simulate  # noqa: E402

PICK = (
    "8B, 1 x H100, 10k chat requests at 40/s",
    "8B, 8 x H100 instances, 100k chat requests at 320/s",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'workload':<54}{'read':>8}{'draw':>8}{'total':>8}{'page':>10}{'data':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for k, name in enumerate(PICK):
            spec = tokensim.load(CASES[name])
            graph = lower(spec)
            result = simulate(graph)
            folder = Path(tmp) / str(k)
            write(result, folder, summarize(result), graph=graph, spec_text=CASES[name])
            best = None
            for _ in range(args.repeat):
                gc.collect()
                t0 = time.perf_counter()
                data = load(folder)
                t1 = time.perf_counter()
                html = render(data)
                t2 = time.perf_counter()
                if best is None or t2 - t0 < best[2]:
                    best = (t1 - t0, t2 - t1, t2 - t0)
            data_B = sum(p.stat().st_size for p in folder.iterdir())
            print(
                f"{name:<54}{best[0]:>7.2f}s{best[1]:>7.2f}s{best[2]:>7.2f}s"
                f"{len(html.encode()) / 1e6:>8.2f}MB{data_B / 1e6:>8.1f}MB"
            )


if __name__ == "__main__":
    main()
