"""Memories: fixed-size array structures inside the training state, and the memory budget."""

from jaxlab.memory.budget import check_fits, tree_bytes
from jaxlab.memory.replay import PrioritizedReplay, ReplayBuffer

__all__ = ["PrioritizedReplay", "ReplayBuffer", "check_fits", "tree_bytes"]
