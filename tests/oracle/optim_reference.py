"""Float64 NumPy transcription of docs/optimizers.md: the slow oracle for gradscope.optim.

Written for clarity, not speed: every rule is the spec's equations applied literally,
layer by layer (a layer = one parameter array). Aida's projections are computed as actual
vector projections, K times, not by the scalar recurrence the fast path uses.
"""

from __future__ import annotations

import math

import numpy as np


def aida_projected_residual(m, g, k, xi):
    """(m^(K) - g^(K)) by literal simultaneous projections (K = 0 gives m - g)."""
    mk, gk = m.ravel().copy(), g.ravel().copy()
    for _ in range(k):
        dot = mk @ gk
        mk, gk = dot / (gk @ gk + xi) * gk, dot / (mk @ mk + xi) * mk
    return (mk - gk).reshape(m.shape)


def rect(b2, t):
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho_t <= 5:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


class Reference:
    """One optimizer over a list of float64 arrays; ``step(grads)`` mutates ``self.x``.

    ``name`` selects the rule; ``hp`` holds the hyperparameters with gradscope's names.
    ``examplewise`` (Eve) is a list of arrays mean_b g_b^2 and ``batch`` is B.
    """

    def __init__(self, name, x, **hp):
        self.name, self.hp = name, hp
        self.x = [np.array(a, dtype=np.float64) for a in x]
        self.t = 0
        a0 = 1e-6 if name == "yogi" else 0.0
        self.m = [np.full_like(a, a0) for a in self.x]
        layer = name in ("ladam", "ladabelief", "laida")
        self.v = [np.array(a0) if layer else np.full_like(a, a0) for a in self.x]
        self.vmax = [np.zeros_like(v) for v in self.v]
        self.buf = [None for _ in self.x]
        self.last_u = [None for _ in self.x]

    def step(self, grads, sq_mean=None, batch=1):
        hp, name = self.hp, self.name
        self.t += 1
        t = self.t
        for i, (x, g) in enumerate(zip(self.x, grads)):
            g = np.array(g, dtype=np.float64)
            if hp.get("maximize"):
                g = -g
            lr = hp["lr"]
            wd = hp.get("weight_decay", 1e-2 if name == "adamw" else 0.0)
            decoupled = hp.get("decoupled_weight_decay", False) or name in ("adamw", "eve")
            if name == "sgd":
                self._sgd(i, x, g)
                continue
            if name == "fromage":
                nx, ng = np.linalg.norm(x), np.linalg.norm(g)
                r = nx / ng if nx > 0 and ng > 0 else 1.0
                self.x[i] = (x - lr * r * g) / math.sqrt(1 + lr * lr)
                self.last_u[i] = np.array(r / math.sqrt(1 + lr * lr))
                continue
            if wd and not decoupled:
                g = g + wd * x
            x0 = x.copy()
            if wd and decoupled:
                x = x * (1 - lr * wd)
            b1, b2 = hp["betas"]  # M-SVAG: (beta, beta)
            eps = hp.get("eps", 0.0)
            m = b1 * self.m[i] + (1 - b1) * g
            self.m[i] = m
            bc1, bc2 = 1 - b1**t, 1 - b2**t
            if name in ("adam", "adamw", "adamplus", "radam", "msvag", "setadam", "adaml", "ladam"):
                s = g * g
            elif name in ("adabelief", "adabeliefl", "ladabelief"):
                s = (g - m) ** 2
            elif name in ("aida", "laida"):
                s = aida_projected_residual(m, g, hp.get("k", 2), hp.get("xi", 1e-20)) ** 2
            elif name == "aidagrad":
                xi = hp.get("xi", 1e-20)
                gp = (m.ravel() @ g.ravel()) / (m.ravel() @ m.ravel() + xi) * m
                s = gp * gp
            elif name == "eve":
                s = sq_mean[i]
            elif name == "yogi":
                s = None
            if name in ("ladam", "ladabelief", "laida"):
                s = np.mean(s)
            if name == "yogi":
                g2 = g * g
                v = self.v[i] - (1 - b2) * np.sign(self.v[i] - g2) * g2
            else:
                v = b2 * self.v[i] + (1 - b2) * s
            if name in (
                "adabelief",
                "adamplus",
                "aida",
                "aidagrad",
                "adaml",
                "adabeliefl",
                "ladam",
                "ladabelief",
                "laida",
            ):
                v = v + eps
            self.v[i] = v
            if hp.get("amsgrad"):
                self.vmax[i] = np.maximum(self.vmax[i], v)
                v = self.vmax[i]
            mhat = m / bc1
            if name in ("adam", "adamw", "adabelief", "adamplus", "yogi") and not hp.get("rectify"):
                u = 1 / (np.sqrt(v / bc2) + eps)
            elif name in ("radam", "adabelief"):
                r = rect(b2, t)
                u = np.ones_like(v) if r is None else r * math.sqrt(bc2) / (np.sqrt(v) + eps)
            elif name in ("aida", "aidagrad", "ladam", "ladabelief", "laida"):
                u = 1 / np.sqrt(v / bc2)
            elif name in ("adaml", "adabeliefl"):
                u = np.array(np.mean(1 / np.sqrt(v / bc2)))
            elif name == "setadam":
                tau = hp.get("tau", 0.5)
                ss = np.sum(v * v)
                cos2 = np.sum(v) ** 2 / (v.size * ss) if ss > 0 else 0.0
                w = np.sqrt(cos2 * v / bc2 + eps)
                u = 1 / (w - tau * np.min(w))
            elif name == "eve":
                vh = (v / bc2) / batch + (1 - 1 / batch) * mhat**2
                u = 1 / (np.sqrt(vh) + eps)
            elif name == "msvag":
                rho = min((1 - b1) * (1 + b1**t) / ((1 + b1) * (1 - b1**t)), 0.9999)
                vv = v / bc1
                with np.errstate(invalid="ignore", divide="ignore"):
                    sv = (vv - mhat**2) / (1 - rho)
                    gamma = mhat**2 / (mhat**2 + rho * sv)
                u = np.nan_to_num(np.clip(gamma, 0, 1), nan=0.0)
            self.last_u[i] = u
            self.x[i] = x - lr * u * mhat
            self.last_update = None
            del x0

    def _sgd(self, i, x, g):
        hp = self.hp
        lr, mu = hp["lr"], hp.get("momentum", 0.0)
        wd, damp = hp.get("weight_decay", 0.0), hp.get("dampening", 0.0)
        g = g + wd * x
        d = g
        if mu:
            self.buf[i] = g.copy() if self.buf[i] is None else mu * self.buf[i] + (1 - damp) * g
            d = g + mu * self.buf[i] if hp.get("nesterov") else self.buf[i]
        self.x[i] = x - lr * d
        self.last_u[i] = np.array(1.0)
