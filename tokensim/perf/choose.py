"""Which cost model prices a pool: the roofline, or a measured table or calibration
(``cost`` in the spec), with the pool's collectives priced on the topology graph."""

from __future__ import annotations

import math

from tokensim import ir
from tokensim.perf.roofline import CostModel
from tokensim.perf.shared import note


def for_pool(pool: ir.Pool, graph) -> CostModel:
    """A :class:`CostModel` for ``pool`` with its collectives priced on ``graph``'s topology.

    The tp ring of each pipeline stage runs over consecutive GPUs of instance 0
    (all instances of a pool are placed alike); its bandwidth is the narrowest
    hop's and its latency the slowest hop's. Stage hand-offs use the path from
    the last GPU of one stage to the first of the next. A pool priced by the
    roofline because nothing chose a cost model (its GPU has no calibration) gets
    a note on stderr, once.
    """
    gpus = pool.instances[0].gpus
    tp, pp = pool.tp, pool.pp
    ring_bw, ring_lat = math.inf, 0.0
    stage_bw, stage_lat = math.inf, 0.0
    for s in range(pp):
        stage = gpus[s * tp : (s + 1) * tp]
        if tp > 1:
            for a, b in zip(stage, stage[1:] + stage[:1], strict=True):
                path = graph.path(a, b)
                ring_bw = min(ring_bw, path.bottleneck_Bps)
                ring_lat = max(ring_lat, path.latency_s)
        if s + 1 < pp:
            path = graph.path(stage[-1], gpus[(s + 1) * tp])
            stage_bw = min(stage_bw, path.bottleneck_Bps)
            stage_lat = max(stage_lat, path.latency_s)
    if pool.speculative is not None:
        from dataclasses import replace

        from tokensim.perf.speculative import Speculating

        spec = pool.speculative
        plain = replace(pool, speculative=None)
        draft = for_pool(replace(plain, model=spec.draft), graph) if spec.draft else None
        return Speculating(for_pool(plain, graph), draft, spec, pool.model.layers)
    if pool.cost.kind == "roofline":
        if pool.cost.span is None:  # nobody chose it: the GPU has no calibration
            note(
                f"pool {pool.name}: no calibration for {pool.gpu.name}: every op priced from "
                "its datasheet figures and efficiency block (cost roofline)"
            )
        return CostModel(pool, ring_bw, ring_lat, stage_bw, stage_lat)
    from tokensim.perf.backend import measured  # numpy tables, loaded when a pool needs them

    return measured(pool, ring_bw, ring_lat, stage_bw, stage_lat)
