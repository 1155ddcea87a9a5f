"""What a run's GPUs draw: energy from what each instance did, step by step.

A GPU draws ``idle`` watts when its instance runs nothing, and while a step runs a draw
between ``memory_bound`` (steps that stream weights and KV: small decode batches) and the
board ``power`` (compute-bound steps: big prefills), by how busy the step keeps the tensor
cores: ``u = min(1, MFU / efficiency.gemm)``, the step's model FLOP utilization (``2 x
active parameters x tokens`` over the step's time and the GPUs' peak in the pool's dtype)
against the share of peak a compute-bound GEMM reaches. So::

    P(step) = memory_bound + (power - memory_bound) * u

Energy is those draws over the instance's iterations and decode runs (``iterations.csv``)
and ``idle`` over the rest of the run (of an autoscaled instance: of the time its GPUs were
held), times its GPUs, summed over the instances. The
figures are the GPU boards' alone (no host, network or cooling). A pool on a GPU without
``power { idle; memory_bound }`` in its catalogue entry has no energy figure, and neither
has the run.
"""

from __future__ import annotations

import numpy as np


def _missing(pools) -> str | None:
    """Why the run has no energy figure (the first GPU without power draws), or None."""
    for pool in pools:
        gpu = pool.gpu
        if gpu.power_W is None or gpu.idle_power_W is None or gpu.memory_power_W is None:
            return (
                f"{gpu.name} (pool {pool.name}) has no `power {{ idle; memory_bound }}` "
                "in its catalogue entry"
            )
    return None


def energy(result) -> dict:
    """The ``energy`` entry of metrics.json: joules in all and per pool, average power, and
    joules per output token; or ``{"missing": why}`` when a GPU has no power draws."""
    pools = result.spec.deployment.pools
    why = _missing(pools)
    if why is not None:
        return {"missing": why}
    span = result.simulated_s
    by_pool: dict[str, dict[str, float]] = {}
    for inst in result.instances:
        pool = result.spec.deployment.pool(inst.pool)
        gpu, gpus = pool.gpu, pool.gpus_per_instance
        work = inst.work  # start, end, prefill tokens, decode sequences, steps
        seconds = work[:, 1] - work[:, 0]
        tokens = work[:, 2] + work[:, 3] * work[:, 4]  # a run's steps each decode its batch
        peak = gpus * (gpu.flops(pool.dtype) or 0.0)
        flops = 2.0 * pool.model.active_params * tokens
        with np.errstate(divide="ignore", invalid="ignore"):
            mfu = np.where(seconds > 0, flops / (seconds * peak), 0.0) if peak else 0.0 * tokens
        busy = np.clip(mfu / gpu.efficiency.gemm, 0.0, 1.0)
        draw = gpu.memory_power_W + (gpu.power_W - gpu.memory_power_W) * busy
        busy_s = float(seconds.sum())
        # an instance's batches in flight (pipelined) share its GPUs: its idle time is the
        # GPUs', counted once over them
        share = 1.0 / pool.microbatches
        busy_J = gpus * float((draw * seconds).sum()) * share
        held = span if inst.up_s is None else inst.up_s  # an autoscaled one: while held
        idle_J = gpus * gpu.idle_power_W * max(0.0, held - busy_s) * share
        entry = by_pool.setdefault(inst.pool, {"joules": 0.0, "busy_joules": 0.0, "busy_s": 0.0})
        entry["joules"] += busy_J + idle_J
        entry["busy_joules"] += busy_J
        entry["busy_s"] += gpus * busy_s * share  # GPU-seconds busy
    total = sum(p["joules"] for p in by_pool.values())
    r = result.requests
    out_tokens = float(r["output_tokens"][~r["rejected"]].sum())
    return {
        "joules": total,
        "kwh": total / 3.6e6,
        "average_power_W": total / span if span > 0 else 0.0,
        "gpus": result.spec.deployment.gpus,
        "joules_per_output_token": total / out_tokens if out_tokens else None,
        "kwh_per_million_output_tokens": total / 3.6e6 / out_tokens * 1e6 if out_tokens else None,
        "pools": {
            name: {
                "joules": p["joules"],
                "average_power_W": p["joules"] / span if span > 0 else 0.0,
                "gpu_busy_power_W": p["busy_joules"] / p["busy_s"] if p["busy_s"] else None,
            }
            for name, p in by_pool.items()
        },
    }
