"""The calibrations shipped with the std catalogue, and how to remake them.

``python3 -m tokensim.perf.ship [DATA]`` fits, for every catalogue GPU with
measured tables in the shared data folder ``DATA`` (default ``../shared/data``
beside the repository), what ``tokensim calibrate`` fits on

* ``nvidia_kernels/<gpu>/``: NVIDIA's kernel timings with vLLM 0.14.0 kernels
  (ai-dynamo/aiconfigurator): GEMMs in bf16 and fp8 (vLLM's per-tensor fp8 path;
  the block-scaled ``fp8_block`` rows are another kernel and left out by the
  importer), prefill and decode attention over a 16-bit and an fp8 KV cache, and
  all-reduce (NCCL and vLLM's custom all-reduce under CUDA graphs);
* ``vidur/data/profiling/compute/<gpu>/``: Vidur's per-layer operators where it
  measured the GPU: the norms, rotary embedding, activation and residual adds
  (its GEMMs are left out, see :data:`VIDUR_OPS`).

Vidur's NCCL all-reduce table (``vidur/data/profiling/network``) is left out: an
engine runs its fastest all-reduce, and NVIDIA's tables measure what vLLM runs;
fitted together with NVIDIA's, Vidur's NCCL fit was the fastest and priced a
402 MB all-reduce on 4 A100s at 1.8 ms where NVIDIA's table (and a measurement)
say 2.9 ms.

Each file, ``dsl/std/calibrations/<GPU>.json``, carries a ``fitted_on``
block: what it was fitted on (every input file with its SHA-256), by which
tokensim, and the command that remakes it. ``std/hardware`` names the files
(``cost calibrated "calibrations/<GPU>.json"``), so pools on those GPUs use them
unless they say ``cost roofline``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from tokensim.perf import calibrate, importers, tables

# catalogue GPU -> (NVIDIA's folder, Vidur's compute folder or None), under the data folder
SHIPPED = {
    "A100_80G": ("nvidia_kernels/a100_sxm", "vidur/data/profiling/compute/a100"),
    "H100_SXM": ("nvidia_kernels/h100_sxm", "vidur/data/profiling/compute/h100"),
    "H200": ("nvidia_kernels/h200_sxm", None),
}
# Vidur's GEMMs are left out: NVIDIA's tables measure every GEMM shape the engines run with
# vLLM 0.14's kernels, Vidur's the PyTorch linear layers of 2023, up to 1.5x slower at the
# same shape (Llama-2-70B tp 4's QKV projection, 512 tokens, H100: 46 us against 29.9 us);
# fitted together, Vidur's rows (more of them) set the medium-size GEMMs.
VIDUR_OPS = ("elementwise",)
FOLDER = Path(str(resources.files("tokensim.dsl"))) / "std" / "calibrations"  # dsl/ in a checkout
DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def inputs(data: Path, gpu: str) -> list[Path]:
    """The measured files ``gpu``'s calibration is fitted on, sorted."""
    files = []
    for folder in SHIPPED[gpu]:
        if folder is None:
            continue
        found = sorted(
            p
            for p in (data / folder).rglob("*.csv")
            if p.name in importers.NVIDIA_FILES + importers.VIDUR_FILES
        )
        if not found:
            raise tables.TableError(f"{data / folder}: no measured tables here")
        files += found
    return files


def fit(data: Path, gpu: str) -> calibrate.Calibration:
    """``gpu``'s calibration from the tables under ``data``, with its ``fitted_on`` block."""
    from tokensim import __version__

    data = data.resolve()  # the sources and inputs are named relative to it
    files = inputs(data, gpu)
    table = tables.concat([_wanted(importers.load(p, gpu), p) for p in files])
    cal = calibrate.calibrate(table)
    root = str(data) + "/"
    cal.sources = [line.replace(root, "") for line in cal.sources]
    folders = " ".join(f for f in SHIPPED[gpu] if f)
    cal.fitted_on = {
        "note": (
            f"fitted by tokensim {__version__} (tokensim calibrate) on measured operator "
            f"tables for {gpu}: NVIDIA's kernel timings with vLLM 0.14.0 kernels "
            "(ai-dynamo/aiconfigurator, Apache-2.0)"
            + (
                ", Vidur's per-layer operator profiles (microsoft/vidur, MIT) for the ops "
                "NVIDIA's tables lack (norms, rotary, activation, residual adds; not its GEMMs)"
                if SHIPPED[gpu][1]
                else ""
            )
            + "; the all-reduce from NVIDIA's nccl_perf.csv and custom_allreduce_perf.csv only"
        ),
        "command": f"python3 -m tokensim.perf.ship  # = tokensim calibrate {folders} -o {gpu}.json",
        "inputs": [
            {"file": str(p.resolve()).replace(root, ""), "sha256": sha256(p)} for p in files
        ],
        "rows": {name: f.rows for name, f in sorted(cal.fits[gpu].items())},
    }
    return cal


def _wanted(t: tables.Table, path: Path) -> tables.Table:
    """The rows of ``path``'s table the calibration is fitted on: from Vidur's profiles only
    the ops NVIDIA's tables lack (:data:`VIDUR_OPS`)."""
    if "vidur" not in path.parts:
        return t
    return t.where(np.isin(t["op"], VIDUR_OPS))


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="the shared data folder")
    ap.add_argument("--gpu", action="append", choices=sorted(SHIPPED), help="only these GPUs")
    ap.add_argument("-o", "--output", default=str(FOLDER), help="folder to write the files to")
    args = ap.parse_args(argv)
    data, out = Path(args.data), Path(args.output)
    if not data.is_dir():
        print(f"error: {data}: no measured data here (the shared data folder)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for gpu in args.gpu or sorted(SHIPPED):
        try:
            cal = fit(data, gpu)
        except (tables.TableError, calibrate.CalibrationError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        cal.write(out / f"{gpu}.json", compact=True)
        (out / f"{gpu}.json").chmod(0o644)  # package data, readable by all (mkstemp: 0600)
        worst = max(f.error["p90"] for f in cal.fits[gpu].values())
        print(
            f"wrote {out / f'{gpu}.json'}: {len(cal.fits[gpu])} op classes, "
            f"{sum(f.rows for f in cal.fits[gpu].values())} rows, worst p90 fit error {worst:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
