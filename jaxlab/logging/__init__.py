"""Logging: every session's rows in the Trial's ``metrics.csv``, TensorBoard for the first
sessions and the Trial's aggregates, and the experiment trackers fed from them (W&B,
MLflow: :mod:`jaxlab.logging.trackers`)."""

from jaxlab.logging.writers import COLUMNS, SessionLogs, TrialWriter, columns_for

__all__ = ["COLUMNS", "SessionLogs", "TrialWriter", "columns_for"]
