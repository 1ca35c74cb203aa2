"""Logging: CSV/TensorBoard writers per session and the Trial's TensorBoard aggregates, and
the experiment trackers fed from them (W&B, MLflow: :mod:`jaxlab.logging.trackers`)."""

from jaxlab.logging.writers import COLUMNS, SessionWriter, TrialWriter, columns_for

__all__ = ["COLUMNS", "SessionWriter", "TrialWriter", "columns_for"]
