"""The version, in one place: pyproject.toml reads it from here (``[tool.setuptools.dynamic]``),
so that importing tokensim needs no package metadata lookup."""

__version__ = "0.1.0"
