"""The cost model: how long one iteration of one instance takes.

``CostModel(pool, graph)`` is built once per pool; ``iteration_s(...)`` is then
cheap enough to call every simulated iteration. The default backend is a
roofline over the GPU's catalogue figures scaled by its ``efficiency`` block.
"""

from tokensim.perf.choose import for_pool
from tokensim.perf.roofline import CostModel
from tokensim.perf.shared import Batch

__all__ = ["Batch", "CostModel", "for_pool"]
