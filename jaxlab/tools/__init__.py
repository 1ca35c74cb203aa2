"""Tools around finished runs and compiled programs: enjoy (replay a trained agent),
render (GIFs), profiling (reading jax.profiler traces)."""
