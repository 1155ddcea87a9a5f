"""Stage 3: ``lower(spec) -> Graph``: the topology and the request dataflow."""

from tokensim.graph.lower import Graph, Path, lower

__all__ = ["Graph", "Path", "lower"]
