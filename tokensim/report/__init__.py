"""Stage 5: ``write(result, out_dir)``: metrics.json, requests.csv, timeseries.csv.

Files are written under temporary names and renamed into place only when all
of them are complete, so a directory never holds a partial result that passes
as whole. Numbers are written with up to 9 significant digits, so the same
spec and seed give byte-identical files (``sim.wall_s`` aside).
"""

from tokensim.report.files import write
from tokensim.report.summary import summary_table

__all__ = ["summary_table", "write"]
