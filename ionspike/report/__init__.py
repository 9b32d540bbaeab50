"""Figures and reports, drawn only from saved Datasets (never runs a simulation)."""

from ionspike.report.traces import plot_traces

__all__ = ["plot_traces"]
