"""Monte Carlo of the literal Adam / AdaBelief recursion, for cases with no closed form.

The simulator runs ``n`` independent scalar recursions in float64, vectorised over ``n``. It
is deliberately the recursion itself, not a sampler built from the theory, so it can check
the theory (docs/theory.md, section 6). Non-zero mean with EMAs, ``eps > 0`` and heavy tails
are Monte Carlo only (docs/theory.md, section 5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "SCENARIOS",
    "AdamSimulation",
    "scenario",
    "simulate_adam",
    "simulate_scenario",
]

Schedule = float | npt.ArrayLike | Callable[[np.ndarray], npt.ArrayLike]


@dataclass(frozen=True)
class AdamSimulation:
    """Updates ``u = m_hat/(sqrt(v_hat) + eps)`` at the recorded steps.

    ``updates[i]`` holds the ``n`` samples at step ``steps[i]`` (steps count from 1).
    """

    steps: np.ndarray
    updates: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)

    def at(self, step: int) -> np.ndarray:
        """Return the samples recorded at ``step``."""
        idx = np.flatnonzero(self.steps == step)
        if idx.size == 0:
            raise KeyError(f"step {step} was not recorded; recorded: {self.steps.tolist()}")
        return self.updates[idx[0]]


def _schedule(value: Schedule, steps: int, name: str) -> np.ndarray:
    """Evaluate sigma(t) or mu(t) at t = 1..steps: scalar, array of length steps, or callable."""
    t = np.arange(1, steps + 1, dtype=float)
    out = value(t) if callable(value) else value
    out = np.broadcast_to(np.asarray(out, dtype=float), (steps,))
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}(t) must be finite for t = 1..{steps}")
    return out


def _noise(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if kind == "gauss":
        return rng.standard_normal(n)
    if kind == "cauchy":
        return rng.standard_cauchy(n)
    if kind.startswith("student:"):
        return rng.standard_t(float(kind.split(":", 1)[1]), n)
    raise ValueError(f"noise must be 'gauss', 'cauchy' or 'student:<nu>', got {kind!r}")


def simulate_adam(
    n: int,
    steps: int,
    beta1: float | None = 0.9,
    beta2: float | None = 0.999,
    eps: float = 0.0,
    sigma: Schedule = 1.0,
    mu: Schedule = 0.0,
    noise: str = "gauss",
    *,
    record: Sequence[int] | None = None,
    belief: bool = False,
    seed: int | np.random.Generator | None = 0,
) -> AdamSimulation:
    """Run ``n`` independent scalar Adam (or AdaBelief) recursions for ``steps`` steps.

    Gradients are ``g_t = mu(t) + sigma(t) * noise``. ``beta=None`` replaces that EMA by a
    running simple average (no bias correction needed). ``eps`` is added outside the square
    root, as in PyTorch. ``belief=True`` uses AdaBelief's ``(g - m)^2`` (plus ``eps`` inside,
    as in the official code) as the second-moment statistic. ``record`` lists the steps to
    keep (default: all). Note that ``sigma(t) = 2**t`` overflows ``g^2`` beyond t = 511.
    """
    if n < 1 or steps < 1:
        raise ValueError(f"n and steps must be >= 1, got n={n}, steps={steps}")
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if b is not None and not 0 <= b < 1:
            raise ValueError(f"{name} must lie in [0, 1) or be None, got {b}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    rec = np.arange(1, steps + 1) if record is None else np.unique(np.asarray(record, int))
    if rec.size and (rec.min() < 1 or rec.max() > steps):
        raise ValueError(f"record steps must lie in 1..{steps}")
    sig = _schedule(sigma, steps, "sigma")
    mean = _schedule(mu, steps, "mu")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    m = np.zeros(n)
    v = np.zeros(n)
    out = np.empty((rec.size, n))
    keep = {int(s): i for i, s in enumerate(rec)}
    for t in range(1, steps + 1):
        g = mean[t - 1] + sig[t - 1] * _noise(noise, rng, n)
        if beta1 is None:
            m += (g - m) / t
            m_hat = m
        else:
            m = beta1 * m + (1 - beta1) * g
            m_hat = m / (1 - beta1**t)
        stat = (g - m) ** 2 + eps if belief else g * g
        if beta2 is None:
            v += (stat - v) / t
            v_hat = v
        else:
            v = beta2 * v + (1 - beta2) * stat
            v_hat = v / (1 - beta2**t)
        if t in keep:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[keep[t]] = m_hat / (np.sqrt(v_hat) + eps)
    config = dict(n=n, steps=steps, beta1=beta1, beta2=beta2, eps=eps, noise=noise, belief=belief)
    return AdamSimulation(steps=rec, updates=out, config=config)


def _jump(t: np.ndarray) -> np.ndarray:
    return np.where(t <= 10, 1.0, 10.0)


def _linear_mean(t: np.ndarray) -> np.ndarray:
    return -0.1 * t


SCENARIOS: dict[str, dict[str, Any]] = {
    "stationary": {},
    "variance_jump": {"sigma": _jump},
    "growing": {"sigma": np.exp2},
    "linear_growth": {"sigma": np.asarray},
    "shrinking": {"sigma": np.reciprocal},
    "nonzero_mean": {"mu": -0.5},
    "drifting_mean": {"mu": _linear_mean},
    "heavy_tails": {"noise": "cauchy"},
}
"""Section-6 scenarios of Zhang & Ziyin (UAI 2021), as ``simulate_adam`` keywords.

They are re-examined in docs/theory.md, section 7.

``variance_jump``: sigma 1 up to t = 10, then 10. ``growing``: sigma = 2^t. ``linear_growth``:
sigma = t. ``shrinking``: sigma = 1/t. ``nonzero_mean``: mu = -0.5. ``drifting_mean``:
mu = -0.1 t. ``heavy_tails``: standard Cauchy noise.
"""


def scenario(name: str) -> dict[str, Any]:
    """Keyword arguments of the named scenario (a copy)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {sorted(SCENARIOS)}")
    return dict(SCENARIOS[name])


def simulate_scenario(name: str, n: int, steps: int, **overrides: Any) -> AdamSimulation:
    """``simulate_adam`` with the named scenario's keywords, overridable (e.g. betas, seed)."""
    kwargs = scenario(name)
    kwargs.update(overrides)
    return simulate_adam(n, steps, **kwargs)
