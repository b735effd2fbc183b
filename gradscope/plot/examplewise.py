"""Draw per-example gradient statistics: GSNR and variance per layer, network batch-size tests."""

from __future__ import annotations

from matplotlib.figure import Figure

from gradscope.analysis.results import ExamplewiseProfile
from gradscope.plot.style import figure, log_scale, palette

__all__ = ["draw_examplewise"]


def draw_examplewise(profile: ExamplewiseProfile) -> Figure:
    """GSNR and variance per layer over time, and the whole network's batch-size tests.

    Panels: per-layer GSNR (log), per-layer per-example gradient variance (log), and the
    network's norm, inner-product and orthogonality tests with the record's ``theta`` as a
    horizontal line (above it the norm test says the batch is too small).
    """
    p = profile
    fig, ax = figure(1, 3, width=4.6)
    cols = palette(len(p.layers))
    mk = "." if len(p.steps) <= 200 else None  # markers show sparse schedules
    for i, layer in enumerate(p.layers):
        ax[0, 0].plot(p.steps, p.gsnr[:, i], color=cols[i], lw=1.2, marker=mk, label=layer)
        ax[0, 1].plot(p.steps, p.variance[:, i], color=cols[i], lw=1.2, marker=mk)
    tests = (
        (p.network_norm_test, "norm test", "-"),
        (p.network_inner_product_test, "inner-product test", "--"),
        (p.network_orthogonality_test, "orthogonality test", ":"),
    )
    for k, (y, label, ls) in enumerate(tests):
        ax[0, 2].plot(p.steps, y, color=palette(3)[k], ls=ls, lw=1.2, marker=mk, label=label)
    ax[0, 2].axhline(p.theta, color="0.3", lw=0.8, label=f"theta = {p.theta:g}")
    for a in ax[0]:
        log_scale(a)
    ax[0, 0].set(
        xlabel="optimizer step",
        ylabel="GSNR (mean of gbar_i^2 / Var_b g_b,i)",
        title="gradient signal-to-noise ratio",
    )
    ax[0, 1].set(
        xlabel="optimizer step",
        ylabel="sum_i Var_b g_b,i",
        title="per-example gradient variance",
    )
    ax[0, 2].set(
        xlabel="optimizer step",
        ylabel="smallest constant that passes",
        title="batch-size tests (whole network)",
    )
    if len(p.layers) <= 12:
        ax[0, 0].legend(fontsize="x-small", loc="best")
    ax[0, 2].legend(fontsize="x-small", loc="best")
    return fig
