"""Plot the exact law of the scaled Adam update sqrt(t) u for t = 1, 2, 3, 5, 10, 100.

i.i.d. Gaussian gradients, simple averaging (docs/theory.md, section 2). At t = 1 the update is
+-1 with probability 1/2 each (drawn as two spikes); t = 2 is the arcsine law, t = 3 uniform,
and large t approaches N(0, 1).

    python examples/theory_pdfs.py --out theory_pdfs.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from gradscope.theory import adam_update_scaled

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="theory_pdfs.png", help="output image (default: %(default)s)")
args = parser.parse_args()

frames = []
for t in [2, 3, 5, 10, 100]:
    edge = np.sqrt(t)
    s = np.linspace(-min(edge, 4.0), min(edge, 4.0), 801)[1:-1]  # open interval: t = 2 diverges
    frames.append(pd.DataFrame({"s": s, "density": adam_update_scaled.pdf(s, t), "t": f"t = {t}"}))
curves = pd.concat(frames, ignore_index=True)

with sns.axes_style("whitegrid"):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=curves, x="s", y="density", hue="t", ax=ax)
    ax.vlines([-1, 1], 0, 0.5, colors="grey", linestyles=":", label="t = 1 (mass 1/2 each)")
    normal = np.linspace(-4, 4, 401)
    ax.plot(normal, np.exp(-(normal**2) / 2) / np.sqrt(2 * np.pi), "k--", lw=0.8, label="N(0, 1)")
    ax.set(
        xlabel=r"$\sqrt{t}\,u$",
        ylabel="density",
        ylim=(0, 0.8),
        xlim=(-4, 4),
        title="Exact law of the Adam update (i.i.d. Gaussian gradients)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
