"""The one learning recipe: what a device trains, how the server steps, how a device adapts.

Every setting that shapes an aggregate lives in a :class:`Recipe`. The genesis version's weights
file carries the recipe (canonical JSON in its metadata, so it is content-addressed with the
weights), every later version copies it forward, and the aggregator, the validators and
``chainml verify`` read it from the base version, never from code defaults. Changing a default
here later therefore cannot change, or break the verification of, an old version.

The recipe (why each part):

* **Node objective** = MAML loss + device loss, on the node's own task. The MAML term adapts *all*
  parameters with ``inner_steps`` full-batch SGD steps at ``inner_lr`` (the MAML protocol's inner
  loop, Finn et al. 2017) and scores the query set; it trains the head and the body for
  plain-SGD adaptation. The device term re-fits the linear head in closed form by ridge
  regression on the body's features (R2-D2, Bertinetto et al. 2019; TinyMetaFed's partial local
  reconstruction) and scores the query set; it trains the body's features for the device
  protocol. The node sends minus the gradient of the sum: a first-class meta-gradient
  (second order through the inner step, cheap for tiny models).
* **Update** = the top-``top_fraction`` of that direction over *all* parameters, int8 with one
  scale per tensor.
* **Server step** = Adam on the aggregated direction (FedAdam, Reddi et al. 2021) with a
  harmonic learning-rate decay ``lr * T / (T + t)``; its moments are stored with each version, so
  validators recompute the next version bit for bit from chain and IPFS data alone.
* **Device protocol** = what a deployed device runs: it re-fits its head by ridge regression on
  the ``device_shots`` samples it holds in a round (support plus query: 20 by default), whose
  sufficient statistics accumulate one sample at a time in O(d^2) RAM; no backprop.
* **Spiking families** (``spiking`` set, :class:`SpikingRecipe`): the device adapts by running
  the meta-learned plasticity rule on a simulated chip (bit depth, noise), never by backprop;
  the node objective is the query loss after the rule, and the meta-gradient reaches the
  weights and the rule's coefficients alike (:mod:`chainml.neuro.node`). Event-driven devices
  send an update only when their error crosses the trigger. A recipe without ``spiking``
  serializes exactly as before, so no earlier version's bytes change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from chainml.errors import ConfigError

RECIPE_FORMAT = "chainml.recipe.v1"

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # Sine's headline is the MAML protocol (5 shots, up to 10 plain SGD steps): train the MAML
    # term on the protocol's 5 shots with 3 inner steps, score it on 15, and keep the ridge term
    # light (it competes for the body). In-process, 50 nodes under `guard`, 300 held-out tasks:
    # MSE after 10 steps 0.34 at round 400 and 0.33-0.36 up to round 1,000, where 1 inner step
    # plateaued at 0.44-0.47 and 5 inner steps diverged.
    "sine": {
        "support_shots": 5,
        "query_shots": 15,
        "inner_steps": 3,
        "ridge_weight": 0.1,
        "server_lr": 0.06,
    },
    # The other families' headline is the device protocol (ridge head re-fit): weight it fully.
    # At 0.3, meter's meta-trained features lost to random ones under the ridge re-fit.
    "meter": {"ridge_weight": 1.0},
    "vibration": {"ridge_weight": 1.0},
    "coldchain": {"ridge_weight": 1.0},
    "digits": {"ridge_weight": 1.0},
    # The event task runs spiking devices with the plasticity rule on an 8-bit noisy chip. They
    # send every round by default: a fleet learning from a random genesis needs every update
    # (from genesis, 8 event-driven devices over 7 rounds ended worse than the genesis, 3.37
    # against 2.23 device MSE, where always-updating ones reached 0.88); event-driven updates
    # (`swarm run --event-driven`) are for a fleet whose model already works.
    "gasdrift": {"ridge_weight": 1.0, "spiking": {"event_ratio": None}},
}
"""Per task family, the settings that differ from :class:`Recipe`'s defaults. A new run's
genesis records the resulting recipe; old versions keep the recipe they recorded."""


LEGACY_UPDATE_MEMORY = 1
"""``update_memory`` of a recorded spiking recipe without the key (written before it existed):
such devices' updates covered the round they sent in only."""


@dataclass(frozen=True)
class SpikingRecipe:
    """How spiking devices learn and what chip they run on (every field shapes an aggregate).

    The rule: ``passes`` presentations of the support set, each followed by the three-factor
    update of the plastic traces (decay ``trace_decay``, clipped to ``trace_clip``). The chip:
    weights, traces and membrane at ``chip_bits`` (None: float) with stochastic rounding, and
    synaptic and membrane noise, in the node objective (noise-injected meta-training) and in
    the device protocol alike. The event trigger (``event_ratio`` None: always send): a device
    checks its stale calibration on each round's labelled samples and sends an update when the
    smoothed error exceeds ``event_ratio`` times its settled level, or after ``max_silent``
    silent rounds (:mod:`chainml.neuro.events`). Its update then covers the samples of every
    round since its previous update, at most ``update_memory`` rounds (the mean of one
    meta-gradient per round): the fleet learns from every sample while sending a fifth of the
    messages. On a 40-device, 40-round gasdrift fleet from the bench's version, updates of the
    sending round only cost 14.6% loss against devices that send every round (the fleet learns
    from a quarter of the data); pooled, with ratio 1.1, 8.3% at 23% of the updates.
    """

    passes: int = 3
    trace_decay: float = 1.0
    trace_clip: float = 1.0
    chip_bits: int | None = 8
    synaptic_sigma: float = 0.05
    membrane_sigma: float = 0.05
    event_ratio: float | None = 1.1
    event_smoothing: float = 0.5
    event_settle: int = 2
    max_silent: int = 5
    update_memory: int = 5

    def __post_init__(self) -> None:
        ok = (
            1 <= self.passes <= 20
            and 0 < self.trace_decay <= 1
            and 0 < self.trace_clip <= 100
            and (self.chip_bits is None or 2 <= self.chip_bits <= 16)
            and 0 <= self.synaptic_sigma <= 1
            and 0 <= self.membrane_sigma <= 1
            and (self.event_ratio is None or 1 <= self.event_ratio <= 100)
            and 0 < self.event_smoothing <= 1
            and 1 <= self.event_settle <= 100
            and 1 <= self.max_silent <= 10_000
            and 1 <= self.update_memory <= 100
        )
        if not ok:
            raise ConfigError(f"invalid spiking recipe: {self}")

    @classmethod
    def from_json(cls, raw: Any) -> SpikingRecipe:
        if not isinstance(raw, dict):
            raise ConfigError("recipe spiking must be an object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"unknown spiking recipe keys: {', '.join(unknown)}")
        body: dict[str, Any] = {"update_memory": LEGACY_UPDATE_MEMORY}
        for name, value in raw.items():
            default = getattr(cls(), name)
            optional = name in ("chip_bits", "event_ratio")
            if optional and value is None:
                body[name] = None
                continue
            want = int if name == "chip_bits" else float if optional else type(default)
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not want:
                raise ConfigError(f"recipe spiking.{name} must be {want.__name__}, got {value!r}")
            body[name] = value
        return cls(**body)


@dataclass(frozen=True)
class Recipe:
    """Every setting of the learning protocol that changes what a version is."""

    support_shots: int = 10
    """Local samples a device adapts on per round."""
    query_shots: int = 10
    """Further local samples it scores the adapted model on (the meta-objective's data)."""
    inner_steps: int = 1
    inner_lr: float = 0.01
    ridge_lambda: float = 0.1
    ridge_weight: float = 0.3
    device_shots: int = 20
    """Samples a deployed device re-fits its head on: all it holds in one round."""
    top_fraction: float = 0.1
    server_optimizer: Literal["adam", "sgd"] = "adam"
    server_lr: float = 0.03
    server_lr_decay_rounds: int = 500
    """``T`` of the harmonic decay ``lr * T / (T + t)``, where ``t`` counts server steps."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    aggregation: str = "guard"
    """The aggregation strategy's name (see :mod:`chainml.aggregate.strategies`)."""
    aggregation_settings: tuple[tuple[str, float], ...] = ()
    """Keyword settings of that strategy, as sorted (name, value) pairs."""
    spiking: SpikingRecipe | None = None
    """Spiking devices with the plasticity rule (None: the gradient recipe above). Left out of
    the JSON when None, so the recipes of non-spiking families keep their bytes."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("support_shots", "query_shots", "device_shots"):
            if not 1 <= getattr(self, name) <= 10_000:
                problems.append(f"{name} must be in 1..10000, got {getattr(self, name)}")
        if not 0 <= self.inner_steps <= 100:
            problems.append(f"inner_steps must be in 0..100, got {self.inner_steps}")
        if not 0 <= self.inner_lr <= 10:
            problems.append(f"inner_lr must be in [0, 10], got {self.inner_lr}")
        if not 0 < self.ridge_lambda <= 1e6 or not 0 <= self.ridge_weight <= 100:
            problems.append("ridge_lambda must be in (0, 1e6] and ridge_weight in [0, 100]")
        if not 0 < self.top_fraction <= 1:
            problems.append(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.server_optimizer not in ("adam", "sgd"):
            problems.append(f"server_optimizer must be adam or sgd, got {self.server_optimizer!r}")
        if not 0 < self.server_lr <= 10 or self.server_lr_decay_rounds < 1:
            problems.append("server_lr must be in (0, 10] and server_lr_decay_rounds >= 1")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1 and self.adam_eps > 0):
            problems.append("Adam needs betas in [0, 1) and a positive eps")
        if problems:
            raise ConfigError("invalid recipe: " + "; ".join(problems))

    @property
    def strategy_settings(self) -> dict[str, float]:
        return dict(self.aggregation_settings)

    def server_lr_at(self, step: int) -> float:
        """The learning rate of server step ``step`` (0-based), as a Python float (IEEE double,
        the same on every machine)."""
        t = float(self.server_lr_decay_rounds)
        return self.server_lr * t / (t + float(step))

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["aggregation_settings"] = {k: v for k, v in self.aggregation_settings}
        if self.spiking is None:
            del raw["spiking"]
        return {"format": RECIPE_FORMAT, **raw}

    def canonical(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """sha256 of the canonical JSON: one short name for the whole recipe."""
        return hashlib.sha256(self.canonical()).hexdigest()

    @classmethod
    def from_json(cls, raw: Any) -> Recipe:
        """Parse a recipe read from a version file; anything unexpected is a ConfigError."""
        if not isinstance(raw, dict) or raw.get("format") != RECIPE_FORMAT:
            raise ConfigError(f"not a {RECIPE_FORMAT} recipe")
        body = {k: v for k, v in raw.items() if k != "format"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ConfigError(f"unknown recipe keys: {', '.join(unknown)}")
        settings = body.get("aggregation_settings", {})
        if not isinstance(settings, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in settings.items()
        ):
            raise ConfigError("recipe aggregation_settings must map names to numbers")
        body["aggregation_settings"] = tuple(sorted((k, float(v)) for k, v in settings.items()))
        if "spiking" in body:
            body["spiking"] = SpikingRecipe.from_json(body["spiking"])
        for f in fields(cls):
            if f.name in body and f.name not in ("aggregation_settings", "spiking"):
                value = body[f.name]
                want = type(getattr(cls(), f.name))
                if want is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                if type(value) is not want:
                    raise ConfigError(f"recipe {f.name} must be {want.__name__}, got {value!r}")
                body[f.name] = value
        return cls(**body)

    @classmethod
    def for_family(cls, family: str, **overrides: Any) -> Recipe:
        """The default recipe of a task family, with ``overrides`` applied; ``device_shots``
        follows support plus query unless given."""
        settings = {**FAMILY_DEFAULTS.get(family, {}), **overrides}
        if isinstance(settings.get("spiking"), dict):
            settings["spiking"] = SpikingRecipe(**settings["spiking"])
        if "device_shots" not in settings:
            settings["device_shots"] = settings.get(
                "support_shots", cls.support_shots
            ) + settings.get("query_shots", cls.query_shots)
        return cls(**settings)

    @classmethod
    def parse(cls, data: bytes | str) -> Recipe:
        try:
            return cls.from_json(json.loads(data))
        except ValueError as exc:
            raise ConfigError(f"recipe is not valid JSON: {exc}") from exc
