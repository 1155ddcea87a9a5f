"""What tokensim can simulate: the language's documented bounds.

A spec (or a trace) beyond one of these gets a located error from ``check`` instead of a
run that exhausts memory, overflows an integer or recurses without end. The reference
(``docs/reference.md``, "Limits") is generated from :data:`LIMITS`.
"""

from __future__ import annotations

# every whole number a spec writes (counts, token lengths, sizes in tokens): what a signed
# 32-bit integer holds, so that it survives numpy's and the simulator's integer arithmetic
WHOLE = 2**31 - 1
REQUESTS = 10_000_000  # simulated requests per run (per-request arrays are held in memory)
TOKENS = 100_000_000  # prompt or output tokens of one request (a spec's lengths, a trace's)
GPUS_PER_NODE = 4_096  # `gpus <gpu> x N` (the largest NVLink domains have 576)
NICS = 64  # network interfaces of one node
INSTANCES = 100_000  # instances of one pool
PARALLEL = 1_024  # tp, pp, dp, ep, microbatches
DEPTH = 100  # nesting: blocks, brackets, calls and operators (`a + b + c` is 2 deep)
SEED = 2**63 - 1  # `seed`, `--seed`
NAME = 200  # characters of a name or an import path

LIMITS: tuple[tuple[str, int, str], ...] = (
    (
        "requests",
        REQUESTS,
        "simulated requests of a run (`requests`, a trace's lines, or the "
        "rate times the `duration`)",
    ),
    ("tokens", TOKENS, "prompt or output tokens of one request (lengths, trace fields)"),
    ("whole numbers", WHOLE, "any other count or size in tokens a spec writes"),
    ("GPUs per node", GPUS_PER_NODE, "`gpus <gpu> x N`"),
    ("NICs per node", NICS, "`nics`"),
    ("instances", INSTANCES, "`instances` of one pool"),
    ("parallelism", PARALLEL, "`tp`, `pp`, `dp`, `ep`, `microbatches`"),
    ("nesting", DEPTH, "blocks, brackets, calls and operators inside one another"),
    ("seed", SEED, "`seed`, `--seed`"),
    ("names", NAME, "characters of a name or an `import` path"),
)
