"""jaxlab: a JAX-accelerated, vectorized deep-RL lab (spec -> Session -> Trial)."""

__version__ = "0.1.0"
