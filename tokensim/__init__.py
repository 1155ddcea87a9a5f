"""tokensim: a simulator of LLM inference serving.

The pipeline is a list of stages, one module and one public function each:
``parse`` (text -> AST), ``check`` (AST -> checked IR), ``lower`` (IR -> graph),
``simulate`` (graph -> result), ``report`` (result -> files). For notebooks,
:func:`load` and :func:`run` (in :mod:`tokensim.api`) do it all.
"""

import sys
from importlib.machinery import ModuleSpec
from importlib.util import spec_from_file_location
from pathlib import Path

from tokensim._version import __version__


class _CheckoutDsl:
    """Finds ``tokensim.dsl`` in a checkout's top-level ``dsl/`` when nothing else does:
    the package is shipped from there (pyproject maps it), and an editable install maps it
    too, but Python started in the checkout's root imports the source ``tokensim/``, which
    has no ``dsl/`` beside an installed one. Last on the meta path: any install wins."""

    folder = Path(__file__).resolve().parent.parent / "dsl"

    def find_spec(self, name, path=None, target=None) -> ModuleSpec | None:
        init = self.folder / "__init__.py"
        if name != "tokensim.dsl" or not init.is_file():
            return None
        return spec_from_file_location(name, init, submodule_search_locations=[str(self.folder)])


if not any(isinstance(f, _CheckoutDsl) for f in sys.meta_path):
    sys.meta_path.append(_CheckoutDsl())

from tokensim.api import Run, load, run  # noqa: E402
from tokensim.frames import search, sweep  # noqa: E402
from tokensim.lang.diagnostics import CompileError  # noqa: E402

__all__ = ["CompileError", "Run", "__version__", "load", "run", "search", "sweep"]
