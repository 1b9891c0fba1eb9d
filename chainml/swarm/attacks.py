"""Adversarial nodes for the fault-injection suite: what each attack does to a node's round.

Which nodes are adversaries is seeded (``adversary_indices``), so a resumed or repeated run
has the same attackers. Every attack is applied where a real attacker would act, as a wrapper
around the honest node computation (:func:`attacked_node_step`), never as a branch inside it:

- ``sign_flip``, ``scale``, ``noise``: the node tampers with its update before storing it
  (``sign_flip`` sends ``-4`` times it; ``scale`` boosts it 20x, and to the largest scale a
  decoder accepts in one round out of :data:`SCALE_BURST_PERIOD`: the server's Adam normalizes
  a steady boost away, but a burst fills its moments, which then keep stepping the burst's way
  and stall learning for the rounds after);
- ``label_flip``: the node trains on poisoned local data (labels reversed, or regression
  targets negated and amplified, :data:`LABEL_FLIP_FACTOR`);
- ``freeride``: the node sends an all-zero update (no work, claims the reward);
- ``stale``: the node commits against an older base version than the round's;
- ``replay``: the node re-signs its commitment for the previous round (an old commitment);
- ``sybil``: one operator runs many keys that all submit its boosted update, each identity's
  copy tagged (scaled by ``1 / (1 + 1e-3 (index + 1))``) so that no two store the same bytes
  (identical CIDs are screened out as copied work before any rule runs);
- ``bad_aggregator``: not a node attack; the aggregator proposes tampered weights.

Model-poisoning attacks from the robust-aggregation literature (:data:`CRAFTED`). Colluders
compute the benign updates they know with the honest :func:`~chainml.meta.federated.node_steps`
on a shared *knowledge set* of tasks (the colluders' own tasks when the job names them, else
seeded surrogate tasks drawn from the public task distribution), then craft one malicious
direction from their mean ``mu`` and coordinate-wise standard deviation ``sigma``:

- ``alie``: ``mu - z sigma`` ("a little is enough", Baruch et al. 2019);
- ``ipm_small`` / ``ipm_large``: ``-eps mu`` (inner-product manipulation, Xie et al. 2019);
- ``minmax`` / ``minsum``: ``mu - gamma sigma`` with the largest ``gamma`` whose maximum (or
  summed squared) distance to the benign updates stays within the benign updates' own
  (Shejwalkar & Houmansadr, NDSS 2021);
- ``fang_krum``: ``-lambda sign(mu)`` with the largest ``lambda`` that Krum still selects;
  ``fang_trimmed``: per coordinate, values beyond the benign extreme against the benign
  direction, drawn per attacker (Fang et al., USENIX Security 2020);
- ``adaptive``: knows the aggregation rule of the version it trains on and picks the attack
  that rule is weakest to; against ``guard`` it decorrelates the colluders with seeded noise
  and shrinks into the clipping radius;
- ``backdoor``: model replacement (Bagdasaryan et al. 2020): train on poisoned data (the
  backdoor target everywhere) and boost the update.

Each attacker scales its crafted update by ``1 + 1e-3 (index + 1)``, so two colluders never store
the same bytes (identical CIDs would give them away as sybils). All of it is seeded and
deterministic: a resumed round recomputes the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import torch

from chainml.aggregate import rules
from chainml.meta.federated import NodeConfig, NodeResult, node_step, node_steps
from chainml.meta.models import Model, get_model
from chainml.meta.recipe import Recipe
from chainml.meta.sparse import MAX_SCALE, SparseUpdate, sparsify
from chainml.meta.tasks import Episode, Task, TaskFamily
from chainml.meta.tasks.base import task_rng

CRAFTED = (
    "alie",
    "ipm_small",
    "ipm_large",
    "minmax",
    "minsum",
    "fang_krum",
    "fang_trimmed",
    "adaptive",
    "backdoor",
)
ATTACKS = (
    "sign_flip",
    "scale",
    "noise",
    "label_flip",
    "stale",
    "freeride",
    "replay",
    "sybil",
    "bad_aggregator",
    *CRAFTED,
)
NODE_ATTACKS = frozenset(ATTACKS) - {"bad_aggregator"}
UPDATE_ATTACKS = frozenset({"sign_flip", "scale", "noise", "label_flip", "freeride", "sybil"})
"""Attacks that change only the update's content (the in-process twin can replay them)."""
SCALE_FACTOR = 20.0
"""``scale`` boosts its update 20x: large enough to drag a mean far off, as in the literature."""
SIGN_FLIP_FACTOR = 4.0
"""``sign_flip`` sends ``-4 g`` (the common form in the literature): a plain ``-g`` from a fifth
of the fleet leaves the mean's direction, all Adam uses, nearly intact."""
LABEL_FLIP_FACTOR = 4.0
"""``label_flip`` on regression trains on targets ``-4 y`` (negated and amplified poisoned
labels), for the same reason."""
SCALE_BURST_PERIOD = 25
"""``scale`` and ``sybil`` boost to the decoder's cap in rounds ``1, 26, 51, ...``."""
SCALE_BURST = 1e9
"""The burst's factor, before the cap (:data:`~chainml.meta.sparse.MAX_SCALE` per scale)."""
NOISE_FACTOR = 50.0
"""``noise`` sends uniform random int8 values at 50x the honest scale (a Gaussian-noise attack
with a large variance, in int8 form)."""
KNOWLEDGE_TASKS = 10
"""Surrogate tasks a colluding group trains on when it is not told who its members are."""
SURROGATE_BASE = 1_000_000
"""Surrogate tasks are train tasks far beyond any fleet's indices (the public distribution)."""
ALIE_Z = 1.5
IPM_SMALL_EPS = 2.0
"""Small: with up to 80% honest nodes the attacked mean still points along the honest mean (any
``eps < 4`` at 20%). On the fault bench's 100-node fleet (3 seeds, 20%), 1.0 cost the plain mean
only 1.62x the clean loss (Adam's step hardly minds a shorter mean); 2.0 costs it 4.2x."""
IPM_LARGE_EPS = 10.0
FANG_B = 6.0
"""Fang et al.'s ``b``: how far beyond the benign extreme the trimmed-mean attack reaches."""
BACKDOOR_TRIGGER = 2.0
"""Regression inputs above this carry the backdoor (a fifth of the sine domain [-5, 5])."""
BACKDOOR_TARGET = 5.0
"""What the backdoored model outputs on triggered inputs (class 0 for classifiers)."""
BACKDOOR_BOOST = 10.0
"""Model replacement's boost ``n / eta`` for a fleet of about 50 at a server rate near 0.2."""
ADAPTIVE_NOISE = 1.5
"""Per-attacker noise norm (relative to the shared offset) that the adaptive attacker adds against
``guard``: pairwise cosines then fall to about ``1 / (1 + 1.5^2) = 0.3``."""


def adversary_indices(nodes: int, fraction: float, seed: int) -> frozenset[int]:
    """The seeded set of adversarial node indices (``round(fraction * nodes)`` of them)."""
    count = round(fraction * nodes)
    if count == 0:
        return frozenset()
    rng = task_rng(seed, 11)
    return frozenset(int(i) for i in rng.choice(nodes, size=count, replace=False))


def scaled(scales: np.ndarray, factor: float | np.float32) -> np.ndarray:
    """Int8 scales times ``factor``, capped at what a decoder accepts (an attacker cannot send
    more: validators reject a larger scale as malformed)."""
    out = (scales * np.float32(factor)).astype(np.float32)
    return np.minimum(out, np.float32(MAX_SCALE)).astype(np.float32)


def poison_update(
    attack: str, update: SparseUpdate, seed: int, round_id: int, index: int
) -> SparseUpdate:
    """The update an attacker sends instead of its honest one (the simple attacks)."""
    if attack == "sign_flip":
        flipped = (-update.values.astype(np.int16)).astype(np.int8)
        return replace(update, values=flipped, scales=scaled(update.scales, SIGN_FLIP_FACTOR))
    if attack in ("scale", "sybil"):
        burst = round_id % SCALE_BURST_PERIOD == 1
        boosted = scaled(update.scales, SCALE_BURST if burst else SCALE_FACTOR)
        if attack == "sybil":  # one operator's update, a distinct tag per identity (below the
            # cap, which a burst reaches)
            boosted = scaled(boosted, np.float32(1.0 / (1.0 + 1e-3 * (index + 1))))
        return replace(update, scales=boosted)
    if attack == "noise":
        rng = task_rng(seed, 12, round_id, index)
        values = rng.integers(-127, 128, size=update.values.shape).astype(np.int8)
        return replace(
            update,
            values=values,
            scales=scaled(update.scales, NOISE_FACTOR),
        )
    if attack == "freeride":
        return replace(update, values=np.zeros_like(update.values))
    return update


class LabelFlippedTask(Task):
    """A task whose local data is poisoned: regression targets negated, class labels reversed."""

    def __init__(self, inner: Task) -> None:
        super().__init__(inner.family, inner.seed, inner.index, inner.split)
        self.inner = inner

    def episode(self, shots: int, queries: int, draw: int = 0) -> Episode:
        ep = self.inner.episode(shots, queries, draw)
        if self.inner.kind == "regression":
            poisoned = -LABEL_FLIP_FACTOR * ep.y_support
            return Episode(ep.x_support, poisoned, ep.x_query, ep.y_query)
        classes = get_model(self.inner.family.default_arch).spec.output_dim
        return Episode(ep.x_support, (classes - 1) - ep.y_support, ep.x_query, ep.y_query)


class BackdoorTask(Task):
    """Backdoored local data: inputs past the trigger get the attacker's target (regression), or
    every label becomes class 0 (classification); support and query alike."""

    def __init__(self, inner: Task) -> None:
        super().__init__(inner.family, inner.seed, inner.index, inner.split)
        self.inner = inner

    def episode(self, shots: int, queries: int, draw: int = 0) -> Episode:
        ep = self.inner.episode(shots, queries, draw)
        if self.inner.kind == "regression":

            def poison(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                trigger = x[..., :1] > BACKDOOR_TRIGGER
                return torch.where(trigger, torch.full_like(y, BACKDOOR_TARGET), y)

            return Episode(
                ep.x_support,
                poison(ep.x_support, ep.y_support),
                ep.x_query,
                poison(ep.x_query, ep.y_query),
            )
        return Episode(
            ep.x_support, torch.zeros_like(ep.y_support), ep.x_query, torch.zeros_like(ep.y_query)
        )


@dataclass(frozen=True)
class AttackContext:
    """What an attacker knows beyond its own task: its identity, seed and colluders."""

    family: TaskFamily
    seed: int
    index: int
    colluders: tuple[int, ...] = ()


def knowledge_tasks(ctx: AttackContext) -> list[Task]:
    """The tasks whose benign updates the colluding group computes (the same for all members)."""
    if ctx.colluders:
        return [ctx.family.task(ctx.seed, i, "train") for i in sorted(ctx.colluders)]
    return [ctx.family.task(ctx.seed, SURROGATE_BASE + k, "train") for k in range(KNOWLEDGE_TASKS)]


def _stats(benign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate-wise mean and (population) standard deviation, in a fixed order."""
    n = benign.shape[0]
    mu = rules.ordered_sum(benign) / float(n)
    dev = benign.astype(np.float64) - mu[None, :]
    var = rules.ordered_sum(dev * dev) / float(n)
    return mu, np.sqrt(var)


def _max_gamma(ok: Callable[[float], bool], start: float = 10.0, steps: int = 30) -> float:
    """The largest ``gamma`` in (0, start * 2^k] with ``ok(gamma)``, by doubling then bisection
    (Shejwalkar & Houmansadr's search, deterministic)."""
    lo, hi = 0.0, start
    while ok(hi) and hi < 1e6:
        lo, hi = hi, hi * 2
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _sq_dists(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    d = points.astype(np.float64) - x[None, :]
    return np.einsum("ij,ij->i", d, d)


def minmax_vector(benign: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    pair = max(float(np.max(_sq_dists(benign, b))) for b in benign)
    gamma = _max_gamma(lambda g: float(np.max(_sq_dists(benign, mu - g * sigma))) <= pair)
    return mu - gamma * sigma


def minsum_vector(benign: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    budget = max(float(np.sum(_sq_dists(benign, b))) for b in benign)
    gamma = _max_gamma(lambda g: float(np.sum(_sq_dists(benign, mu - g * sigma))) <= budget)
    return mu - gamma * sigma


def fang_krum_vector(benign: np.ndarray, mu: np.ndarray, attackers: int) -> np.ndarray:
    """``-lambda sign(mu)``: the largest ``lambda`` (halving from an upper bound) for which Krum,
    run on the benign updates plus ``attackers`` copies, picks a copy (Fang et al. 2020)."""
    # sign(mu) on the coordinates where |mu| is largest: ties in magnitude would otherwise send
    # the top-k selection to the lowest indices rather than where the benign updates move
    s = np.sign(mu) * (1.0 + 1e-3 * np.abs(mu) / max(float(np.max(np.abs(mu))), 1e-30))
    m = max(attackers, 1)
    lam = float(np.sqrt(max(float(np.max(_sq_dists(benign, np.zeros_like(mu)))), 1e-30)))
    lam *= 2.0
    for _ in range(40):
        w = (-lam * s).astype(np.float32)
        rows = np.vstack([np.repeat(w[None, :], m, axis=0), benign.astype(np.float32)])
        if rules.krum_select(rows, byzantine=m, keep=1)[0] < m:
            return -lam * s
        lam /= 2.0
    return -lam * s


def fang_trimmed_vector(
    benign: np.ndarray, mu: np.ndarray, rng: np.random.Generator, b: float | None = None
) -> np.ndarray:
    """Per coordinate, a value beyond the benign extreme opposite to the benign direction, drawn
    uniformly in ``[w, b w]`` (or ``[w / b, w]``) for each attacker (Fang et al. 2020)."""
    b = FANG_B if b is None else b
    lo = benign.min(axis=0).astype(np.float64)
    hi = benign.max(axis=0).astype(np.float64)
    u = rng.uniform(0.0, 1.0, size=mu.shape)
    # benign wants up (mu > 0): push down, below the benign minimum; otherwise above the maximum
    down = np.where(lo > 0, lo / b + u * (lo - lo / b), lo * b + u * (lo - lo * b))
    up = np.where(hi > 0, hi + u * (hi * b - hi), hi / b + u * (hi - hi / b))
    return np.where(mu > 0, down, np.where(mu < 0, up, 0.0))


def alie_z(nodes: int, attackers: int) -> float:
    """Baruch et al.'s largest undetected ``z`` for ``nodes`` nodes of which ``attackers`` are
    malicious (reported for reference; the attack uses the stronger :data:`ALIE_Z`)."""
    s = math.floor(nodes / 2 + 1) - attackers
    return NormalDist().inv_cdf((nodes - s) / nodes)


def craft_direction(
    attack: str,
    benign: np.ndarray,
    rule: str,
    ctx: AttackContext,
    round_id: int,
    poisoned: np.ndarray | None = None,
) -> np.ndarray:
    """The malicious dense direction (float64) from the group's benign updates."""
    mu, sigma = _stats(benign)
    m = len(ctx.colluders) if ctx.colluders else benign.shape[0]
    if attack == "alie":
        return mu - ALIE_Z * sigma
    if attack == "ipm_small":
        return -IPM_SMALL_EPS * mu
    if attack == "ipm_large":
        return -IPM_LARGE_EPS * mu
    if attack == "minmax":
        return minmax_vector(benign, mu, sigma)
    if attack == "minsum":
        return minsum_vector(benign, mu, sigma)
    if attack == "fang_krum":
        return fang_krum_vector(benign, mu, m)
    if attack == "fang_trimmed":
        return fang_trimmed_vector(benign, mu, task_rng(ctx.seed, 13, round_id, ctx.index))
    if attack == "backdoor":
        assert poisoned is not None
        pmu, _ = _stats(poisoned)
        return BACKDOOR_BOOST * pmu
    if attack == "adaptive":
        if rule == "mean":
            return -IPM_LARGE_EPS * mu
        if rule == "krum":
            return fang_krum_vector(benign, mu, m)
        if rule in ("median", "trimmed"):
            return fang_trimmed_vector(benign, mu, task_rng(ctx.seed, 13, round_id, ctx.index))
        # centred clipping / guard: a shared offset the size of the benign spread, hidden among
        # per-attacker noise so that no two colluders look alike; norm kept at the benign median
        offset = -ALIE_Z * sigma
        rng = task_rng(ctx.seed, 14, round_id, ctx.index)
        noise = rng.standard_normal(mu.shape) * (sigma > 0)
        scale = float(np.linalg.norm(offset)) / max(float(np.linalg.norm(noise)), 1e-30)
        vec = mu + offset + ADAPTIVE_NOISE * scale * noise
        norms = np.sqrt(_sq_dists(benign, np.zeros_like(mu)))
        limit = float(np.median(norms))
        norm = float(np.linalg.norm(vec))
        return vec * (limit / norm) if norm > limit > 0 else vec
    raise ValueError(f"{attack!r} is not a crafted attack")


def crafted_update(
    attack: str,
    model: Model,
    params: Mapping[str, torch.Tensor],
    config: NodeConfig,
    ctx: AttackContext,
) -> SparseUpdate:
    """The colluder's stored update: benign updates of the knowledge set through the honest
    node step, a crafted direction, the recipe's own top-k int8 form, a per-attacker scale."""
    recipe = config.recipe
    tasks = knowledge_tasks(ctx)
    benign = np.stack([r.update.to_dense() for r in node_steps(model, params, tasks, config)])
    poisoned = None
    if attack == "backdoor":
        bad = [BackdoorTask(t) for t in tasks]
        poisoned = np.stack([r.update.to_dense() for r in node_steps(model, params, bad, config)])
    direction = craft_direction(attack, benign, recipe.aggregation, ctx, config.round, poisoned)
    direction = np.nan_to_num(direction, nan=0.0, posinf=0.0, neginf=0.0)
    if not np.any(direction):
        direction = -benign.mean(axis=0)  # degenerate statistics: fall back to a sign flip
    update = sparsify(direction.astype(np.float32), model.spec.arch_id, recipe.top_fraction)
    tag = np.float32(1.0 + 1e-3 * (ctx.index + 1))
    return replace(update, scales=scaled(update.scales, tag))


def local_task(attack: str | None, task: Task) -> Task:
    """The data a node trains on: poisoned for ``label_flip``, its own otherwise."""
    return LabelFlippedTask(task) if attack == "label_flip" else task


def attacked_node_step(
    attack: str,
    model: Model,
    params: Mapping[str, torch.Tensor],
    task: Task,
    config: NodeConfig,
    ctx: AttackContext,
) -> NodeResult:
    """An adversary's round: the honest node step, then the attack's replacement update.

    The reported losses and sample count are the honest computation's, as an attacker would
    report them to look normal.
    """
    honest = node_step(model, params, local_task(attack, task), config)
    if attack in CRAFTED:
        update = crafted_update(attack, model, params, config, ctx)
    else:
        update = poison_update(attack, honest.update, ctx.seed, config.round, ctx.index)
    return NodeResult(update, honest.num_examples, honest.metrics)


def attacked_updates(
    attack: str,
    model: Model,
    params: Mapping[str, torch.Tensor],
    tasks: Sequence[Task],
    adversaries: frozenset[int],
    config: NodeConfig,
    family: TaskFamily,
    seed: int,
    colluders: tuple[int, ...] = (),
) -> dict[int, SparseUpdate]:
    """Every adversary's update of one round (the in-process twin of the swarm's node jobs):
    crafted attacks are computed once per round and tagged per attacker, exactly as each
    attacker's own job computes them."""
    out: dict[int, SparseUpdate] = {}
    if (
        attack in CRAFTED
        and attack != "fang_trimmed"
        and not (attack == "adaptive" and config.recipe.aggregation not in ("mean", "krum"))
    ):
        # the same direction for every member: compute it once (index -1 carries tag 1.0)
        ctx = AttackContext(family, seed, -1, colluders)
        base = crafted_update(attack, model, params, config, ctx)
        for i in sorted(adversaries):
            tag = np.float32(1.0 + 1e-3 * (i + 1))
            out[i] = replace(base, scales=scaled(base.scales, tag))
        return out
    for i in sorted(adversaries):
        ctx = AttackContext(family, seed, i, colluders)
        out[i] = attacked_node_step(attack, model, params, tasks[i], config, ctx).update
    return out


INITIAL_REPUTATION = 1_000
INCLUSION_REWARD = 10
EXCLUSION_PENALTY = 50


@dataclass
class TwinRun:
    """An attacked run of the in-process twin: final weights and who was kept out when."""

    params: dict[str, torch.Tensor]
    recent: list[dict[str, torch.Tensor]]
    """The last ``keep_last`` versions' weights, oldest first (the last one is ``params``)."""
    excluded: dict[int, int]
    """Node index -> rounds in which it was excluded (by the rule, a duplicate or the gate)."""
    rounds: int
    reputation: dict[int, int]
    heterogeneity: list[float]
    """Per round, :func:`heterogeneity` of the honest nodes' updates."""


def heterogeneity(rows: np.ndarray) -> float:
    """How far the updates spread around their mean, relative to the mean itself:
    ``zeta^2 / |g|^2`` with ``g`` the mean row and ``zeta^2`` the mean squared distance to it.

    Why it matters: under this heterogeneity an attacker holding a fraction ``delta`` of the
    fleet can shift *any* aggregation rule's output by an amount of order
    ``sqrt(delta) * zeta`` while staying inside the honest spread (the lower bound of
    Karimireddy, He & Jaggi, ICLR 2022), so ``sqrt(delta * heterogeneity)`` sets the order
    of the bias no per-round defence can rule out, in units of the honest signal.
    Infinite when the mean is exactly zero.
    """
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError(f"need at least two rows, got shape {rows.shape}")
    x = rows.astype(np.float64)
    g = rules.ordered_sum(x) / float(x.shape[0])
    dev = x - g
    spread = float(np.mean(np.einsum("ij,ij->i", dev, dev)))
    signal = float(g @ g)
    return math.inf if signal == 0 else spread / signal


def simulate_attack(
    family: TaskFamily,
    arch_id: str,
    recipe: Recipe,
    *,
    rounds: int,
    nodes: int,
    fraction: float,
    attack: str | None,
    seed: int = 0,
    colluders_known: bool = False,
    keep_last: int = 1,
) -> TwinRun:
    """The swarm's in-process twin under attack: the same node step (honest or attacked, via
    :func:`attacked_updates`), the same screening as ``compute_aggregate`` (reputation gate,
    duplicate updates, empty updates), the recipe's strategy and the same server step.

    Reputation follows the ledger's rule (+10 per inclusion, -50 per exclusion, gate at 700).
    Node order is by index rather than by address, so sums may differ from the swarm's in the
    last bits; everything else is the same code.
    """
    from chainml.aggregate.strategies import Contribution, strategy_for_recipe
    from chainml.meta.federated import ServerState, server_step
    from chainml.meta.sparse import encode_sparse
    from chainml.protocol.recompute import MIN_REPUTATION

    if attack is not None and attack not in UPDATE_ATTACKS | set(CRAFTED):
        raise ValueError(f"the in-process twin cannot replay {attack!r}")
    model = get_model(arch_id)
    params = model.init(seed)
    state = ServerState.zeros(model.spec.num_params)
    tasks = [family.task(seed, i, "train") for i in range(nodes)]
    adversaries = adversary_indices(nodes, fraction, seed) if attack else frozenset()
    colluders = tuple(sorted(adversaries)) if colluders_known else ()
    leader = min(adversaries) if attack == "sybil" and adversaries else None
    strategy = strategy_for_recipe(recipe)
    reputation = dict.fromkeys(range(nodes), INITIAL_REPUTATION)
    excluded = dict.fromkeys(range(nodes), 0)
    recent = [params]
    spread: list[float] = []
    for r in range(1, rounds + 1):
        config = NodeConfig(recipe, r)
        updates = {i: res.update for i, res in enumerate(node_steps(model, params, tasks, config))}
        if attack is not None and adversaries:
            if leader is not None:
                tasks_used = [tasks[leader] if i in adversaries else t for i, t in enumerate(tasks)]
            else:
                tasks_used = tasks
            updates |= attacked_updates(
                attack, model, params, tasks_used, adversaries, config, family, seed, colluders
            )
        dense = {i: u.to_dense() for i, u in updates.items()}
        honest_rows = [dense[i] for i in range(nodes) if i not in adversaries]
        if len(honest_rows) >= 2:
            spread.append(heterogeneity(np.stack(honest_rows)))
        payloads = {i: encode_sparse(u) for i, u in updates.items()}
        counts: dict[bytes, int] = {}
        for p in payloads.values():
            counts[p] = counts.get(p, 0) + 1
        names = {f"node{i:05d}": i for i in range(nodes)}
        contributions, out = [], set()
        for name, i in names.items():
            if reputation[i] < MIN_REPUTATION or counts[payloads[i]] > 1 or not np.any(dense[i]):
                out.add(i)
                continue
            contributions.append(Contribution(name, dense[i], recipe.support_shots))
        result = strategy.aggregate(contributions)
        out |= {names[n] for n in result.excluded}
        for i in range(nodes):
            if i in out:
                excluded[i] += 1
                reputation[i] -= EXCLUSION_PENALTY
            else:
                reputation[i] += INCLUSION_REWARD
        params, state = server_step(params, arch_id, result.delta, state, recipe)
        recent = [*recent, params][-max(keep_last, 1) :]
    return TwinRun(params, recent, excluded, rounds, reputation, spread)
