"""Speed of the simulator: wall time, requests/s, events/s and peak memory.

    python3 bench/speed.py            # the four cases below
    python3 bench/speed.py --big      # and 1,000,000 requests on 64 instances (minutes)

1. 10,000 chat-like requests at a high load (40/s) on one H100 serving Llama-3.1-8B;
2. 100,000 chat-like requests over 8 H100 instances (320/s);
3. 100,000 chat-like requests on a 32-GPU disaggregated cluster: Llama-3.1-70B fp8, eight tp-2
   prefill instances on two nodes sending KV over InfiniBand to four tp-4 decode instances on
   two other nodes (60/s);
4. Vidur's reference workload: Llama-2-70B, tp 2 on A100 80GB, continuous batching with at
   most 128 sequences, lengths from Vidur's splitwise_conv trace, Poisson 0.75 req/s, 10,000
   requests (skipped when ../shared/data is absent). Vidur needs 50-144 s for it.
5. (``--big``) 1,000,000 chat-like requests over 64 H100 instances of Llama-3.1-8B at 1024/s,
   routed to the instance with the fewest requests.

Each case runs in a process of its own, so that its peak resident memory (``ru_maxrss``) is
its own. "sim s" is the best of ``--repeat`` runs (default 3; 1 for ``--big``) of parse +
check + lower + simulate, "simulated" the simulated time (s); "run s" and "run MB" are the
whole process of ``tokensim run`` on the case (started by the case's process, best of the
same repeats): start-up, the simulation, the result files and the page (Vidur's case
without the page, as it is compared with Vidur, which draws none).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tokensim  # noqa: E402
from tokensim.graph import lower  # noqa: E402
from tokensim.sim.run import simulate  # noqa: E402

SHARED = (
    ROOT.parent / "shared" / "data" / "vidur" / "data" / "processed_traces" / "splitwise_conv.csv"
)

HEAD = 'import "std/hardware"\nimport "std/models"\n'
CASES = {
    "8B, 1 x H100, 10k chat requests at 40/s": HEAD
    + """
cluster { node n0 { gpus H100_SXM x 1 } }
deployment { pool p { model llama3_1_8b } }
workload { arrivals poisson 40/s; lengths chat; requests 10000; seed 1 }
""",
    "8B, 8 x H100 instances, 100k chat requests at 320/s": HEAD
    + """
cluster { node n0 { gpus H100_SXM x 8; link NVLINK4 } }
deployment { pool p { model llama3_1_8b; instances 8 }
             route p by least_requests }
workload { arrivals poisson 320/s; lengths chat; requests 100000; seed 1 }
""",
    "70B fp8, 32 x H100 disaggregated (8 x tp2 -> 4 x tp4, IB), 100k at 60/s": HEAD
    + """
cluster {
  node n0 { gpus H100_SXM x 8; link NVLINK4; nics 8 }
  node n1 { gpus H100_SXM x 8; link NVLINK4; nics 8 }
  node n2 { gpus H100_SXM x 8; link NVLINK4; nics 8 }
  node n3 { gpus H100_SXM x 8; link NVLINK4; nics 8 }
  network IB_400G between n0, n1, n2, n3
}
deployment {
  pool prefill { model llama3_1_70b fp8; instances 8; tp 2; on n0, n1; role prefill }
  pool decode { model llama3_1_70b fp8; instances 4; tp 4; on n2, n3; role decode }
  transfer prefill -> decode
  route prefill by least_tokens
  route decode by least_kv
}
workload { arrivals poisson 60/s; lengths chat; requests 100000; seed 1 }
""",
    "Vidur reference: Llama-2-70B tp2 A100, splitwise_conv, 0.75/s, 10k": HEAD
    + f"""
cluster {{ node n0 {{ gpus A100_80G x 2; link NVLINK3 }} }}
deployment {{ pool p {{ model llama2_70b; tp 2; batching continuous {{ max_seqs 128 }} }} }}
workload {{
  trace "{SHARED}" {{ format vidur }}
  arrivals poisson 0.75/s
  requests 10000
  seed 0
}}
""",
}


BIG = {
    "8B, 64 x H100 instances, 1M chat requests at 1024/s, least_requests": HEAD
    + "cluster {\n"
    + "".join(f"  node n{i} {{ gpus H100_SXM x 8; link NVLINK4 }}\n" for i in range(8))
    + """}
deployment { pool p { model llama3_1_8b; instances 64 }
             route p by least_requests }
workload { arrivals poisson 1024/s; lengths chat; requests 1000000; seed 1 }
""",
}


def measure(text: str, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None
        gc.collect()  # earlier runs' garbage would otherwise be collected on this one's time
        start = time.perf_counter()
        result = simulate(lower(tokensim.load(text)))
        best = min(best, time.perf_counter() - start)
    return best, result


def whole_run(text: str, repeat: int, page: bool) -> float:
    """Best wall time of ``tokensim run`` on ``text`` as a process of its own."""
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="tokensim-speed-") as tmp:
        spec = Path(tmp) / "case.tsim"
        spec.write_text(text)
        cmd = [sys.executable, "-m", "tokensim", "run", str(spec), "-o", f"{tmp}/out", "-q"]
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(cmd + ([] if page else ["--no-report"]), check=True, cwd=ROOT)
            best = min(best, time.perf_counter() - start)
    return best


def run_case(name: str, repeat: int) -> dict:
    """Run one case here; its figures as a dict."""
    text = {**CASES, **BIG}[name]
    wall, result = measure(text, repeat)
    figures = {
        "wall_s": wall,
        "requests": len(result.requests["id"]),
        "events": result.events,
        "simulated_s": result.simulated_s,
        "peak_rss_B": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    result = None
    figures["run_s"] = whole_run(text, repeat, page="Vidur" not in name)
    # the largest child is the only one: tokensim run, every repeat alike
    figures["run_peak_B"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also the 1M-request case")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # run one case in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.repeat)))
        return 0
    cases = {**CASES, **(BIG if args.big else {})}
    head = (
        f"{'workload':<78}{'sim s':>8}{'req/s':>10}{'events/s':>11}{'simulated':>10}"
        f"{'peak MB':>9}{'run s':>8}{'run MB':>8}"
    )
    print(head)
    for name in cases:
        if "Vidur" in name and not SHARED.exists():
            print(f"{name:<78}  skipped: {SHARED} is absent")
            continue
        repeat = 1 if name in BIG else args.repeat
        cmd = [sys.executable, __file__, "--case", name, "--repeat", str(repeat)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{name:<78}  failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        wall = r["wall_s"]
        print(
            f"{name:<78}{wall:>8.2f}{r['requests'] / wall:>10.0f}{r['events'] / wall:>11.0f}"
            f"{r['simulated_s']:>10.0f}{r['peak_rss_B'] / 1e6:>9.0f}"
            f"{r['run_s']:>8.2f}{r['run_peak_B'] / 1e6:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
