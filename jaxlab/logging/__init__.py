"""Logging: CSV/TensorBoard writers per session and the Trial's TensorBoard aggregates."""

from jaxlab.logging.writers import COLUMNS, SessionWriter, TrialWriter

__all__ = ["COLUMNS", "SessionWriter", "TrialWriter"]
