"""Stage 5: a run's result folder and its page.

``write(result, out_dir, ...)`` writes metrics.json, requests.csv, timeseries.csv,
iterations.csv and, given the graph, graph.json, run.json and spec.tsim.
``write_page(out_dir)`` then renders report.html from those files alone, which is
also what ``tokensim report DIR`` does.

Files are written under temporary names and renamed into place only when all
of them are complete, so a folder never holds a partial result that passes
as whole. Numbers are written with up to 9 significant digits, so the same
spec and seed give byte-identical files (``sim.wall_s`` aside).
"""

from pathlib import Path

from tokensim.report.files import publish, write
from tokensim.report.load import ResultError, load
from tokensim.report.summary import summary_table


def write_page(folder: str | Path) -> Path:
    """Render ``folder``'s report.html from its files; return its path."""
    from tokensim.report.page import render

    folder = Path(folder)
    html = render(load(folder))
    publish(folder, {"report.html": html})
    return folder / "report.html"


__all__ = ["ResultError", "load", "summary_table", "write", "write_page"]
