"""The seed-scaling plot: training env-steps/s against seeds, log-log, one panel per config."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """jaxlab and rejax env-steps/s per seed count (``seed_scaling`` rows); OOM marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    configs = sorted({(r["algo"], r["env"]) for r in rows if "seeds" in r})
    if not configs:
        return
    fig, axes = plt.subplots(1, len(configs), figsize=(5.5 * len(configs), 4), squeeze=False)
    for ax, (algo, env) in zip(axes[0], configs, strict=True):
        mine = [r for r in rows if (r.get("algo"), r.get("env")) == (algo, env) and "seeds" in r]
        for fw, style in (("jaxlab", "o-"), ("rejax", "s--")):
            pts = [(r["seeds"], r[fw]["steps_per_s"]) for r in mine if r[fw]["status"] == "ok"]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=fw)
            for r in mine:
                if r[fw]["status"] == "OOM":
                    ax.axvline(r["seeds"], color="grey", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="seeds", ylabel="training env-steps/s")
        ax.set_xticks([r["seeds"] for r in mine], [str(r["seeds"]) for r in mine])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        low, high = ax.get_ylim()
        if high / low < 10:  # within a decade there is no power of ten to label
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_title(f"{algo} {env}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
