"""An Experiment: a hyperparameter study over Trials, run by Ray Tune (driver, the plan it
keeps on disk, the worker that trains a group of batched Trials, the Ray Tune glue)."""
