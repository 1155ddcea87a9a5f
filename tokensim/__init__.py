"""tokensim: a simulator of LLM inference serving.

The pipeline is a list of stages, one module and one public function each:
``parse`` (text -> AST), ``check`` (AST -> checked IR), ``lower`` (IR -> graph).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokensim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
