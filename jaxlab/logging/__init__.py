"""Logging: CSV/TensorBoard writers per session and the Trial's TensorBoard aggregates."""

from jaxlab.logging.writers import COLUMNS, SessionWriter, TrialWriter, columns_for

__all__ = ["COLUMNS", "SessionWriter", "TrialWriter", "columns_for"]
