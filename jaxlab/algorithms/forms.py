"""PPO and A2C come in three forms; their registry entries build the one the spec asks for:

* feed-forward (:mod:`jaxlab.algorithms.ppo`, :mod:`jaxlab.algorithms.a2c`);
* recurrent, with ``agent.net.recurrent`` (:mod:`jaxlab.algorithms.recurrent`);
* with self-imitation learning, with ``agent.algorithm.sil.updates > 0``
  (:mod:`jaxlab.algorithms.sil`).
"""

from __future__ import annotations

from typing import Any

from jaxlab.algorithms.a2c import A2C, A2CConfig
from jaxlab.algorithms.ppo import PPO, PPOConfig
from jaxlab.algorithms.recurrent import Recurrent
from jaxlab.algorithms.registry import register
from jaxlab.algorithms.sil import SelfImitation


class RecurrentPPO(Recurrent, PPO):
    """PPO with a recurrent network."""


class RecurrentA2C(Recurrent, A2C):
    """A2C with a recurrent network."""


class SelfImitationPPO(SelfImitation, PPO):
    """PPO with self-imitation learning (PPO+SIL)."""


class SelfImitationA2C(SelfImitation, A2C):
    """A2C with self-imitation learning (A2C+SIL)."""


def forms(plain: type, recurrent: type, self_imitation: type) -> Any:
    """An entry's ``make(spec, env=None)`` building the form the spec asks for."""

    def make(spec: Any, env: Any = None) -> Any:
        if spec.agent.net.recurrent:
            return recurrent(spec, env)
        if spec.agent.algorithm.sil.updates:
            return self_imitation(spec, env)
        return plain(spec, env)

    return make


register("PPO", PPOConfig, forms(PPO, RecurrentPPO, SelfImitationPPO))
register("A2C", A2CConfig, forms(A2C, RecurrentA2C, SelfImitationA2C))

__all__ = ["RecurrentA2C", "RecurrentPPO", "SelfImitationA2C", "SelfImitationPPO", "forms"]
