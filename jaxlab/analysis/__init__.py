"""Analysis of finished (or interrupted) runs: lab metrics, random baselines, plots, reports.

Everything here reads what a run wrote (``metrics.csv``, ``spec.yaml``,
``provenance.json``); nothing needs the training state, so reports can be rebuilt at any
time without re-training. Submodules are imported on use (plots pull in matplotlib).
"""
