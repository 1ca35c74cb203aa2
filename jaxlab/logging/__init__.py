"""Logging: CSV/TensorBoard writers and the progress bar."""

from jaxlab.logging.writers import COLUMNS, SessionWriter

__all__ = ["COLUMNS", "SessionWriter"]
