"""QC figures with matplotlib (Agg backend: no display): each function returns PNG bytes."""

from __future__ import annotations

import io
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def family_mix(rows: list[dict]) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [100 * r["share"] for r in rows], width=0.4, label="this dataset")
    ax.bar([i + 0.2 for i in x], [100 * (r["published_share"] or 0) for r in rows], width=0.4,
           label="TumorCoT (published)", color="#bbb")
    ax.set_xticks(list(x), [r["group"] for r in rows])
    ax.set_ylabel("% of records")
    ax.legend()
    ax.set_title("Family mix (TumorCoT's four groups)")
    return _png(fig)


def lesion_size(lesions: list[dict]) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    by_organ: dict[str, list[dict]] = defaultdict(list)
    for les in lesions:
        by_organ[les["organ"]].append(les)
    organs = sorted(by_organ)
    for ax, key, label in ((axes[0], "long_axis_mm", "long axis (mm)"), (axes[1], "volume_ml", "volume (mL)")):
        if not organs:
            _empty(ax, "no lesions")
            continue
        ax.boxplot([[les[key] for les in by_organ[o]] for o in organs])
        ax.set_xticks(range(1, len(organs) + 1), [f"{o} (n={len(by_organ[o])})" for o in organs], fontsize=7,
                      rotation=30, ha="right")
        ax.set_ylabel(label)
        if key == "volume_ml":
            ax.set_yscale("log")
    fig.suptitle("Lesion size and volume per organ")
    return _png(fig)


def attenuation(lesions: list[dict], phases: dict[str, int]) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    diffs: dict[str, list[float]] = defaultdict(list)
    for les in lesions:
        if les["hu_difference"] is not None:
            diffs[les["attenuation"]].append(les["hu_difference"])
    if diffs:
        kinds = sorted(diffs)
        axes[0].hist([diffs[k] for k in kinds], bins=20, stacked=True, label=kinds)
        axes[0].legend(fontsize=7)
        axes[0].set_xlabel("lesion - organ mean HU")
        axes[0].set_ylabel("lesions")
    else:
        _empty(axes[0], "no lesion attenuation measured")
    axes[0].set_title("Attenuation")
    names = sorted(phases)
    axes[1].bar(names, [phases[n] for n in names], color="#7a9")
    axes[1].set_ylabel("cases")
    axes[1].set_title("Contrast phase (estimated)")
    axes[1].tick_params(axis="x", labelsize=7, rotation=15)
    return _png(fig)


def answer_positions(positions: dict[str, dict]) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if not positions:
        _empty(ax, "no multiple-choice records")
    offset = 0
    ticks, labels = [], []
    for n, entry in sorted(positions.items(), key=lambda kv: int(kv[0])):
        counts = entry["counts"]
        xs = [offset + i for i in range(len(counts))]
        ax.bar(xs, counts, label=f"{n} options")
        expected = sum(counts) / len(counts)
        ax.hlines(expected, xs[0] - 0.4, xs[-1] + 0.4, colors="k", linestyles="dashed")
        ticks += xs
        labels += [chr(ord("A") + i) for i in range(len(counts))]
        offset += len(counts) + 1
    if positions:
        ax.set_xticks(ticks, labels)
        ax.legend(fontsize=7)
    ax.set_ylabel("records")
    ax.set_title("Answer position (dashed: uniform)")
    return _png(fig)


def splits(split_counts: dict) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, key in zip(axes, ("records", "patients")):
        names = [s for s in ("train", "validation", "test") if s in split_counts[key]]
        ax.bar(names, [split_counts[key][s] for s in names], color="#69c")
        ax.set_title(f"{key} per split")
    return _png(fig)


def rejections(rows: list[dict], top: int = 12) -> bytes:
    fig, ax = plt.subplots(figsize=(9, max(2.4, 0.8 + 0.35 * min(top, len(rows)))))
    rows = rows[:top]
    if not rows:
        _empty(ax, "no rejection in the generation log")
    else:
        ax.barh(range(len(rows)), [r["count"] for r in rows][::-1], color="#c76")
        ax.set_yticks(range(len(rows)), [f"{r['agent']}: {r['reason'][:70]}" for r in rows][::-1], fontsize=7)
        ax.set_xlabel("rejections")
    ax.set_title("Rejections by reason in the generation log (calibrator, judge, review quarantine)")
    return _png(fig)


def review_rates(rates: dict | None) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, title in ((axes[0], "by_task", "per task"), (axes[1], "by_stage", "per step stage")):
        rows = [r for r in (rates or {}).get(key, []) if r["error_rate"] is not None]
        if not rows:
            _empty(ax, "no verdicts")
        else:
            rate = [100 * r["error_rate"] for r in rows]
            low = [100 * (r["error_rate"] - r["ci95"][0]) for r in rows]
            high = [100 * (r["ci95"][1] - r["error_rate"]) for r in rows]
            ax.bar(range(len(rows)), rate, yerr=[low, high], capsize=4, color="#a66")
            ax.set_xticks(range(len(rows)), [f"{r['group']}\n(n={r['correct'] + r['wrong']})" for r in rows],
                          fontsize=7)
            ax.set_ylabel("error rate (%), Wilson 95 % CI")
        ax.set_title(f"Review error rate {title}")
    return _png(fig)
