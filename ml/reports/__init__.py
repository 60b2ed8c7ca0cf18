"""Static HTML reports built from evaluation tables: plain Python (polars, matplotlib), no Dagster."""

from ml.reports.model_metrics import ModelMetricsInputs, render_model_metrics_report

__all__ = ["ModelMetricsInputs", "render_model_metrics_report"]
