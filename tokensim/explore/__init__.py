"""Exploring many configurations: sweeps (and, later, searches)."""
