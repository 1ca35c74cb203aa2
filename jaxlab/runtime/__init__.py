"""The host runtime around a compiled Trial: start or resume a run, the host loop between
compiled groups of chunks, outputs (CSV, TensorBoard), checkpoints, signals, provenance."""
