"""The workload stage: arrival processes, length distributions and request traces.

``generate(workload, base_dir, rng) -> Requests`` is the stage's one entry;
``read_trace`` / ``write_trace`` read and write trace files on their own.
"""

from tokensim.workload.generate import generate
from tokensim.workload.requests import Requests
from tokensim.workload.traces import TraceError, read_trace, write_trace

__all__ = ["Requests", "TraceError", "generate", "read_trace", "write_trace"]
