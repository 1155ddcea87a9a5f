"""tokensim: a simulator of LLM inference serving.

The pipeline is a list of stages, one module and one public function each:
``parse`` (text -> AST), ``check`` (AST -> checked IR), ``lower`` (IR -> graph),
``simulate`` (graph -> result), ``report`` (result -> files). For notebooks,
:func:`load` and :func:`run` (in :mod:`tokensim.api`) do it all.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokensim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from tokensim.api import Run, load, run  # noqa: E402
from tokensim.lang.diagnostics import CompileError  # noqa: E402

__all__ = ["CompileError", "Run", "__version__", "load", "run"]
