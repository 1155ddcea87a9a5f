"""Stage 5: a run's result folder and its page.

``write(result, out_dir, ...)`` writes metrics.json, requests.csv, timeseries.csv,
iterations.csv and, given the graph, graph.json, run.json and spec.tsim.
``write_page(out_dir)`` then renders report.html from those files alone, which is
also what ``tokensim report DIR`` does; a run just written passes
``from_result(out_dir, result)``, the same data made from memory (exactly what the files
read back as), and the page is the same without reading the CSVs.

Files are written under temporary names and renamed into place only when all
of them are complete, so a folder never holds a partial result that passes
as whole. Numbers are written with up to 9 significant digits, so the same
spec and seed give byte-identical files (``sim.wall_s`` aside).
"""

from pathlib import Path

from tokensim.report.files import publish, write
from tokensim.report.load import ResultError, Results, from_result, load
from tokensim.report.summary import summary_table


def write_page(folder: str | Path, results: Results | None = None) -> Path:
    """Render ``folder``'s report.html from its files (or ``results``, from
    :func:`from_result`); return its path."""
    from tokensim.report.page import render

    folder = Path(folder)
    html = render(results if results is not None else load(folder))
    publish(folder, {"report.html": html})
    return folder / "report.html"


__all__ = ["ResultError", "from_result", "load", "summary_table", "write", "write_page"]
