"""Memories: fixed-size array structures inside the training state, and the memory budget."""

from jaxlab.memory.budget import check_fits, tree_bytes
from jaxlab.memory.replay import PrioritizedReplay, Replay, ReplayBuffer, make_replay

__all__ = ["PrioritizedReplay", "Replay", "ReplayBuffer", "check_fits", "make_replay", "tree_bytes"]
