"""Wall time of a 200-point sweep: one process, local processes, Ray, and resuming.

    python3 bench/sweep.py [--jobs N] [--skip-ray]

The sweep is Llama-3.1-70B fp8 on eight H100s (tp 2) under chat traffic, 1,000 requests a
point: 20 arrival rates x 5 batch limits x 2 instance counts. Each executor runs it through
the command line into a fresh folder with ``--no-cache``. Then a run is stopped with Ctrl-C
(SIGINT) once half its points are done, and run again: it runs only the points that were
not finished. Last, the sweep runs again with every point done, into the same folder and
into a new one (where each point's page is drawn again). The CPU figure is the share of
all this machine's cores that was busy during the run (from /proc/stat): 100% means every
core worked throughout. The results of every executor are compared byte for byte
(sweep.csv and each point's requests.csv).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tokensim.explore.cache import Cache  # noqa: E402

SPEC = """import "std/hardware"
import "std/models"
name "200-point sweep"
cluster { node n0 { gpus H100_SXM x 8; link NVLINK4 } }
deployment {
  pool chat {
    model llama3_1_70b fp8
    instances 4
    tp 2
    on n0
    batching continuous { max_seqs 256; max_tokens 8192 }
  }
  route chat by least_requests
}
workload { arrivals poisson 8/s; lengths chat; requests 1000; seed 5 }
slo { ttft p90 < 1 s; tpot p90 < 50 ms }
sweep {
  workload.arrivals.rate in 2/s .. 40/s step 2/s
  deployment.chat.batching.max_seqs in 16, 32, 64, 128, 256
  deployment.chat.instances in 2, 4
}
"""


def busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def run(folder: Path, out: str, *args: str) -> tuple[float, float]:
    """Run the sweep into ``folder/out``; return (wall seconds, share of CPU busy)."""
    b0, t0 = busy()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tokensim", "run", "sweep.tsim", "-o", out, "-q", *args],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    b1, t1 = busy()
    if done.returncode != 0:
        sys.exit(f"tokensim run {' '.join(args)} failed:\n{done.stderr}")
    return wall, (b1 - b0) / max(t1 - t0, 1)


def same(a: Path, b: Path) -> bool:
    files = ["sweep.csv"] + sorted(str(p.relative_to(a)) for p in a.glob("*/requests.csv"))
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count(), help="processes (default: CPUs)"
    )
    parser.add_argument("--skip-ray", action="store_true", help="leave out the Ray executor")
    args = parser.parse_args()
    jobs = str(args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sweep.tsim").write_text(SPEC)
        print(f"200-point sweep on {os.cpu_count()} CPUs; {jobs} jobs where parallel\n")
        print("| executor | wall | CPU busy | same results as one process |")
        print("|---|---|---|---|")
        one, cpu = run(folder, "serial", "-j", "1", "--no-cache")
        print(f"| one process (-j 1) | {one:.1f} s | {cpu:.0%} | — |")
        wall, cpu = run(folder, "local", "-j", jobs, "--no-cache")
        ok = same(folder / "serial", folder / "local")
        print(
            f"| local processes (-j {jobs}) | {wall:.1f} s ({one / wall:.2f}x) | {cpu:.0%} | {ok} |"
        )
        if not args.skip_ray:
            try:
                import ray  # noqa: F401
            except ImportError:
                print("| Ray | not installed | | |")
            else:
                wall, cpu = run(folder, "ray", "--executor", "ray", "-j", jobs, "--no-cache")
                ok = same(folder / "serial", folder / "ray")
                speedup = f"{wall:.1f} s ({one / wall:.2f}x)"
                print(f"| Ray, local cluster (-j {jobs}) | {speedup} | {cpu:.0%} | {ok} |")
        cache = folder / "cache"
        cut = interrupt(folder, cache, jobs)
        wall, cpu = run(folder, "resumed", "-j", jobs, "--cache", str(cache))
        ok = same(folder / "serial", folder / "resumed")
        print(
            f"| resumed after Ctrl-C at {cut} points: runs the other {200 - cut} "
            f"| {wall:.1f} s | {cpu:.0%} | {ok} |"
        )
        wall, cpu = run(folder, "resumed", "-j", jobs, "--cache", str(cache))
        print(f"| run again, every point done | {wall:.1f} s | {cpu:.0%} | — |")
        wall, cpu = run(folder, "elsewhere", "-j", jobs, "--cache", str(cache))
        ok = same(folder / "serial", folder / "elsewhere")
        label = "every point cached, into a new folder (pages drawn)"
        print(f"| {label} | {wall:.1f} s | {cpu:.0%} | {ok} |")


def interrupt(folder: Path, cache: Path, jobs: str) -> int:
    """Start the sweep and press Ctrl-C once about half its points are cached; return how
    many were."""
    cmd = [sys.executable, "-m", "tokensim", "run", "sweep.tsim", "-o", "resumed", "-q"]
    proc = subprocess.Popen(
        [*cmd, "-j", jobs, "--cache", str(cache)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    while len(Cache(cache)) < 100 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    if proc.returncode != 130:
        sys.exit(f"the interrupted sweep exited {proc.returncode}:\n{err.decode()}")
    return len(Cache(cache))


if __name__ == "__main__":
    main()
