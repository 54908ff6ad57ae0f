r"""How collected episodes choose their actions: random actions held for a while ("sticky"),
and a controller with random bursts (World Models' iterative procedure with exploration)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Exploration"]


class Exploration:
    r"""A collection policy around a controller, or instead of one.

    At each step where no random action is being held, a random action (uniform over the action
    space) is drawn with probability ``epsilon`` and then held for :math:`L` steps,
    :math:`L \sim \mathrm{Geometric}(1 / \text{hold})` on :math:`\{1, 2, \dots\}` (mean
    ``hold``); otherwise the controller's action is taken. Without a controller ``epsilon``
    must be 1: every action is random, held for ``hold`` steps on average.

    Why: M learns how the world answers the actions it saw. Uniformly random actions change at
    half the steps of a two-action space, so runs of k equal actions are rare (about
    :math:`2^{-k}`), and a dream of pushing one way (CartPole) is extrapolation: M, fitted on
    random play, let the pole stand for 31 dream steps under "always right" where the world
    allows 9, and CMA-ES found that hole at once. Holding each random action for a few steps
    shows M such runs: the "sticky actions" of Machado et al. 2018 ("Revisiting the Arcade
    Learning Environment"; there the environment repeats the previous action with probability
    :math:`\varsigma`, which gives geometric runs of mean :math:`1 / (1 - \varsigma)`), here as
    the collection policy rather than the environment's noise. With a controller
    (``epsilon < 1``) the episodes go where C goes, with random departures from it: the
    collection step of World Models' iterative procedure (Ha & Schmidhuber 2018), so that M
    also learns what happens off C's own path.

    For a space of n discrete actions, the action changes between two steps with probability
    :math:`(1 - 1/n) / \text{hold}` when every action is random (a test checks this).

    Arguments:
        epsilon: the probability of starting a random action at a step, in [0, 1].
        hold: the mean number of steps a random action is held, >= 1 (1: a fresh random action
            at every random step, the plain random policy when ``epsilon`` is 1).
    """

    def __init__(self, epsilon: float = 1.0, hold: float = 1.0):
        for name, value in (("epsilon", epsilon), ("hold", hold)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        if hold < 1:
            raise ValueError(
                f"hold must be >= 1 (mean steps a random action is held), got {hold!r}"
            )
        self.epsilon, self.hold = float(epsilon), float(hold)
        self.held, self.left = None, 0

    def __repr__(self) -> str:
        return f"Exploration(epsilon={self.epsilon}, hold={self.hold})"

    def reset(self) -> None:
        """Forget any held action (called at the start of every episode)."""
        self.held, self.left = None, 0

    def choose(self, space, rng: np.random.Generator, proposed=None):
        """The action to take: a held or fresh random action of ``space``, or ``proposed`` (the
        controller's; ``None`` without one, which needs ``epsilon = 1``). ``rng`` draws every
        random choice."""
        if self.left == 0:
            if proposed is not None and rng.random() >= self.epsilon:
                return proposed
            if proposed is None and self.epsilon < 1:
                raise ValueError(
                    f"without a controller every action is random: epsilon must be 1, got "
                    f"{self.epsilon}"
                )
            self.held = random_action(space, rng)
            self.left = int(rng.geometric(1 / self.hold)) if self.hold > 1 else 1
        self.left -= 1
        return self.held


def random_action(space, rng: np.random.Generator):
    """A uniform action of a gymnasium ``Discrete`` (an int) or ``Box`` space (float32 array)."""
    n = getattr(space, "n", None)
    if n is not None:
        return int(rng.integers(int(n)))
    return rng.uniform(space.low, space.high).astype(np.float32)
