r"""Episodes of a controller: in a real environment through V and M, or in M's dream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..distributions import temper
from ..models import Controller, WorldModel, shift_actions
from ..models.validation import as_tensor, check_count, check_positive
from .exploration import Exploration, random_action

__all__ = [
    "DONE_MODES",
    "DreamFitness",
    "DreamRollout",
    "EnvFitness",
    "Episode",
    "check_done_mode",
    "dream_rollout",
    "episode_inputs",
    "hidden_state",
    "real_rollout",
]


DONE_MODES = ("sample", "expected")
r"""How a dream reads the done head: ``"sample"`` draws a done flag each step and the rollout
ends at the first (World Models'); ``"expected"`` draws none and counts each step's reward
weighted by the probability of being alive, :math:`\prod_{s<t} (1 - \pi_d(z_s, a_s))`: the
expected return over the done flags, the same mean with less noise."""


def check_done_mode(done: str) -> str:
    if done not in DONE_MODES:
        raise ValueError(f"done must be one of {DONE_MODES}, got {done!r}")
    return done


def hidden_state(state) -> Tensor:
    """M's hidden state :math:`h` ``(B, H)``: the top layer of an LSTM ``(h, c)`` or GRU state."""
    return (state[0] if isinstance(state, tuple) else state)[-1]


def _check_pair(world_model: WorldModel | None, controller: Controller, needs_m: bool) -> None:
    if not isinstance(controller, Controller):
        raise TypeError(f"controller must be a Controller, got {type(controller).__name__}")
    if world_model is None:
        raise ValueError("a controller reads V's codes: pass the trained world_model")
    if world_model.latent_dim != controller.latent_dim:
        raise ValueError(
            f"the world model's latent_dim is {world_model.latent_dim}; the controller reads "
            f"latent_dim={controller.latent_dim}"
        )
    if not needs_m:
        return
    if world_model.prior is None:
        raise ValueError("M is needed (h or a dream) but the world model has prior='normal'")
    size = world_model.prior.rnn.hidden_size
    if controller.use_hidden and controller.hidden_dim != size:
        raise ValueError(f"M's hidden size is {size}; the controller reads {controller.hidden_dim}")
    if world_model.action_dim != controller.action_dim:
        raise ValueError(
            f"M reads actions of size {world_model.action_dim}; the controller's are "
            f"{controller.action_dim} (a discrete action is one-hot)"
        )


@torch.no_grad()
def episode_inputs(world_model: WorldModel, frames, actions, mask=None) -> tuple[Tensor, Tensor]:
    """What a controller reads along recorded episodes, at their unmasked steps: V's codes ``z``
    ``(N, D)`` and M's states ``h`` ``(N, H)`` (teacher forced on the codes and ``actions``
    ``(B, T, A)`` as M reads them), e.g. for :meth:`~pyro_frmdn.models.Controller.fit_inputs`."""
    z = world_model.encode(frames, mask)
    actions = torch.as_tensor(actions, dtype=z.dtype, device=z.device)
    h = world_model.prior.features(z, shift_actions(actions))
    keep = torch.ones(z.shape[:2], dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    return z[keep], h[keep]


@dataclass
class Episode:
    """One real episode: its return and length, and with ``record=True`` its arrays."""

    total: float
    steps: int
    frames: np.ndarray | None = None  # (T, C, S, S) uint8, frame t seen before action t
    actions: np.ndarray | None = None  # (T, A) float32, as M reads them (one-hot if discrete)
    rewards: np.ndarray | None = None  # (T,) float32
    dones: np.ndarray | None = None  # (T,) bool, true at most at the last step


def _features(space, action) -> np.ndarray:
    n = getattr(space, "n", None)
    if n is None:
        return np.asarray(action, dtype=np.float32).reshape(-1)
    return np.eye(int(n), dtype=np.float32)[int(action)]


@torch.no_grad()
def real_rollout(
    env,
    world_model: WorldModel | None = None,
    controller: Controller | None = None,
    params=None,
    seed: int = 0,
    max_steps: int = 1000,
    record: bool = False,
    explore: Exploration | None = None,
) -> Episode:
    r"""Run one episode in ``env`` (an environment of frames, see
    :func:`~pyro_frmdn.data.make_env`), World Models' way: at each step V encodes the frame
    to :math:`z_t` (the guide's mean code), C acts on :math:`[z_t, h_t]`, and M's RNN reads
    :math:`(z_t, a_t)` to give :math:`h_{t+1}`. Without a ``controller`` the actions are
    uniformly random (seeded by ``seed``). With ``explore`` (an
    :class:`~pyro_frmdn.infer.exploration.Exploration`) the actions are its choices instead:
    random actions held for a while, or C's with random bursts; M then reads the action taken.

    Arguments:
        env: ``reset(seed=) -> (frame, info)``, ``step(action) -> (frame, reward, terminated,
            truncated, info)`` with frames ``(C, S, S)`` uint8 as the world model reads them,
            and an ``action_space``.
        world_model, controller: V and M, and C; ``params`` a flat vector for C (default its
            own parameters).
        seed: the environment's seed.
        max_steps: the most actions.
        record: keep the frames, actions, rewards and dones (for collecting episodes); the
            dones are the environment's terminations only: an episode cut by a time limit
            (``truncated``) or by ``max_steps`` ends without a done flag.
        explore: a collection policy (random draws seeded by ``seed``); ``None``: C's actions,
            or uniformly random ones without C.
    """
    max_steps = check_count("max_steps", max_steps)
    if explore is not None:
        if not isinstance(explore, Exploration):
            raise TypeError(f"explore must be an Exploration, got {type(explore).__name__}")
        explore.reset()
    if controller is not None:
        _check_pair(world_model, controller, controller.use_hidden)
        if params is not None:
            params = as_tensor("params", params, controller.weight.device)[None]
        dtype = controller.weight.dtype
        use_m = controller.use_hidden
        if use_m:
            state = world_model.prior.initial_state(1)
            z_prev, a_prev = None, torch.zeros(1, controller.action_dim, dtype=dtype)
    rng = np.random.default_rng(seed)
    frame, _ = env.reset(seed=seed)
    total, kept = 0.0, {k: [] for k in ("frames", "actions", "rewards", "dones")}
    for _ in range(max_steps):
        if controller is None:
            if explore is None:
                action = random_action(env.action_space, rng)
            else:
                action = explore.choose(env.action_space, rng)
        else:
            z = world_model.encode(torch.as_tensor(np.asarray(frame))[None, None])[:, 0]  # (1, D)
            h = None
            if use_m:  # M's RNN reads (z_{t-1}, a_{t-1}); its mixture is not needed here
                m = world_model.prior
                state = m.rnn(m.rnn_input(z_prev, a_prev)[:, None], state)[1]
                h = hidden_state(state)
            if params is None:
                a = controller.act(z, h)
            else:
                a = controller.act(z[None], None if h is None else h[None], params)[0]
            z_prev, a_prev = z, controller.action_features(a)
            action = int(a[0]) if controller.discrete else a[0].cpu().numpy()
            if explore is not None:  # M reads the action taken
                action = explore.choose(env.action_space, rng, action)
                a_prev = torch.as_tensor(
                    _features(env.action_space, action),
                    dtype=dtype,
                    device=controller.weight.device,
                )[None]
        kept["frames"].append(np.asarray(frame))
        kept["actions"].append(_features(env.action_space, action))
        frame, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        kept["rewards"].append(float(reward))
        # a time limit's truncation ends the episode but is no state to end in: M's done head
        # must not learn that a pole balanced at step 500 falls
        kept["dones"].append(bool(terminated))
        if terminated or truncated:
            break
    out = Episode(total, len(kept["rewards"]))
    if record:
        out.frames = np.stack(kept["frames"]).astype(np.uint8)
        out.actions = np.stack(kept["actions"]).astype(np.float32)
        out.rewards = np.asarray(kept["rewards"], dtype=np.float32)
        out.dones = np.asarray(kept["dones"], dtype=bool)
    return out


@dataclass
class DreamRollout:
    """What :func:`dream_rollout` returns, for P candidates of R rollouts of at most T steps."""

    returns: Tensor  # (P, R) the summed predicted rewards while alive
    steps: Tensor  # (P, R) steps until the first done (T if none)
    latents: Tensor  # (P, R, T, D) z_1..z_T
    actions: Tensor  # (P, R, T) discrete indices or (P, R, T, A) values


@torch.no_grad()
def dream_rollout(
    world_model: WorldModel,
    controller: Controller,
    params,
    rollouts: int = 1,
    max_steps: int = 1000,
    temperature: float = 1.0,
    initial: Tensor | None = None,
    seed: int = 0,
    done: str = "sample",
) -> DreamRollout:
    r"""Roll M forward in latent space with C acting, for a whole population at once (World
    Models' dream, Ha & Schmidhuber 2018, §4.5): no frame is decoded.

    For each of ``P × R`` rollouts: :math:`h_1` from M's first step, :math:`z_1` drawn from it
    (or taken from ``initial``); then at each step :math:`a_t = C(z_t, h_t)`, the reward head's
    mean :math:`\hat r_t(z_t, a_t)` is counted while the rollout is alive, a done flag is drawn
    from the done head's Bernoulli (the rollout dies at the first; a head of
    ``done_hidden=True`` reads M's state :math:`h_t` too), and
    :math:`z_{t+1} \sim p(z_{t+1} \mid z_{\le t}, a_{\le t})` at temperature
    :math:`\tau` (mixture logits divided by :math:`\tau`, covariances multiplied by it, as
    :func:`~pyro_frmdn.distributions.temper`; τ > 1 makes the dream harder to exploit). The
    latents are a prior sample of M under the controller's actions: the z draws are those of
    M's :meth:`~pyro_frmdn.models.FRMDN.step` distributions, tempered, from torch's global
    generator; the done flags and the choice of initial latents use a separate generator seeded
    by ``seed``.

    Arguments:
        world_model: V and M with a reward head (``reward=True``); without a done head every
            rollout lasts ``max_steps``.
        controller: C; ``params`` ``(P, n)`` its population of flat parameter vectors.
        rollouts: R per candidate. max_steps: T.
        temperature: τ > 0.
        initial: starting latents ``(N, D)`` (e.g. encoded first frames), drawn uniformly.
        seed: seed of the done flags and the initial latents.
        done: one of :data:`DONE_MODES`; with ``"expected"``, ``returns`` are expected returns
            and ``steps`` the expected lengths (floats).
    """
    _check_pair(world_model, controller, True)
    if world_model.reward_head is None:
        raise ValueError("dreaming for returns needs the world model's reward head (reward=True)")
    rollouts, max_steps = check_count("rollouts", rollouts), check_count("max_steps", max_steps)
    check_positive("temperature", temperature)
    check_done_mode(done)
    params = as_tensor("params", params, controller.weight.device)
    if params.dim() != 2:
        raise ValueError(f"params must be a population (P, n), got {tuple(params.shape)}")
    m, p, r = world_model.prior, params.shape[0], rollouts
    b = p * r
    gen = torch.Generator().manual_seed(int(seed))
    state = m.initial_state(b)
    a_prev = torch.zeros(b, world_model.action_dim, dtype=world_model.guide_dtype)
    d, state = m.step(state, None, a_prev.to(m.device))
    if initial is None:
        z = temper(d, temperature, temperature).sample()
    else:
        initial = as_tensor("initial", initial, m.device)
        if initial.dim() != 2 or initial.shape[1] != controller.latent_dim:
            raise ValueError(f"initial must be (N, {controller.latent_dim}), got {initial.shape}")
        z = initial[torch.randint(len(initial), (b,), generator=gen)].to(a_prev.dtype)
    alive = torch.ones(b, dtype=torch.bool, device=m.device)
    total = torch.zeros(b, dtype=a_prev.dtype, device=m.device)
    steps = torch.full((b,), max_steps, device=m.device)
    if done == "expected":  # the probability of being alive, and the expected length
        alive_p, steps = total.new_ones(b), total.new_zeros(b)
    latents, actions = [], []
    for t in range(max_steps):
        h = hidden_state(state).reshape(p, r, -1) if controller.use_hidden else None
        a = controller.act(z.reshape(p, r, -1), h, params)
        a = a.reshape(b) if controller.discrete else a.reshape(b, -1)
        feats = controller.action_features(a)
        latents.append(z)
        actions.append(a)
        hidden = hidden_state(state)[:, None] if world_model.done_hidden else None
        heads = world_model.head_distributions(z[:, None], feats[:, None], None, hidden)
        reward = heads["reward"].base_dist.mean[:, 0]
        if done == "expected":
            total += alive_p * reward
            steps += alive_p
            if "done" in heads:
                alive_p = alive_p * (1 - heads["done"].base_dist.probs[:, 0])
        else:
            total += torch.where(alive, reward, 0.0)
        if "done" in heads and done == "sample":
            flag = torch.rand(b, generator=gen).to(m.device) < heads["done"].base_dist.probs[:, 0]
            steps = torch.where(alive & flag, t + 1, steps)
            alive &= ~flag
        if t + 1 == max_steps:
            break
        d, state = m.step(state, z, feats)
        z = temper(d, temperature, temperature).sample()
    return DreamRollout(
        total.reshape(p, r),
        steps.reshape(p, r),
        torch.stack(latents, 1).reshape(p, r, max_steps, -1),
        torch.stack(actions, 1).reshape(p, r, max_steps, *actions[0].shape[1:]),
    )


class DreamFitness:
    """The fitness of a population in M's dream: the returns ``(P, R)`` of
    :func:`dream_rollout`, one batched call, torch seeded by the generation's ``seed`` (the
    caller's random state is left as it was). The settings are checked here, when it is built;
    ``done`` is one of :data:`DONE_MODES` (``"expected"``: expected returns, less noise)."""

    def __init__(self, world_model, controller, rollouts=16, max_steps=1000, temperature=1.15,
                 initial=None, done="sample"):  # fmt: skip
        _check_pair(world_model, controller, True)
        self.world_model, self.controller, self.initial = world_model, controller, initial
        self.rollouts = check_count("rollouts", rollouts)
        self.max_steps = check_count("max_steps", max_steps)
        self.temperature = check_positive("temperature", temperature)
        self.done = check_done_mode(done)

    def __call__(self, params: Tensor, seed: int) -> Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = dream_rollout(
                self.world_model, self.controller, params, self.rollouts, self.max_steps,
                self.temperature, self.initial, seed, self.done,
            )  # fmt: skip
        return out.returns


class EnvFitness:
    """The fitness of a population in the real environment: the returns ``(P, R)`` of
    :func:`real_rollout`, one episode after another. Every candidate of a generation meets the
    same R episode seeds (drawn from the generation's ``seed``), so a candidate's returns do
    not depend on which others share its batch: splitting a population over worker processes
    gives the numbers of one process. ``make_env`` must be picklable for workers (a function
    defined at module level, or a ``functools.partial`` of one)."""

    def __init__(self, make_env: Callable, world_model, controller, rollouts=16, max_steps=1000):
        if not callable(make_env):
            raise TypeError(
                f"make_env must be a callable returning an environment, got {make_env!r}"
            )
        _check_pair(world_model, controller, getattr(controller, "use_hidden", False))
        self.make_env, self.world_model, self.controller = make_env, world_model, controller
        self.rollouts = check_count("rollouts", rollouts)
        self.max_steps = check_count("max_steps", max_steps)

    def episode_seeds(self, seed: int) -> list[int]:
        return [int(s) for s in np.random.SeedSequence(seed).generate_state(self.rollouts)]

    def __call__(self, params: Tensor, seed: int) -> Tensor:
        env = self.make_env()
        try:
            seeds = self.episode_seeds(seed)
            run = self.world_model, self.controller
            out = [
                [real_rollout(env, *run, vector, s, self.max_steps).total for s in seeds]
                for vector in params
            ]
        finally:
            env.close()
        return torch.tensor(out, dtype=torch.float64)
