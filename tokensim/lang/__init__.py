"""The .tsim language: source positions, diagnostics, the parser, units and the checker."""
