"""Turn a finished ``dwd_study.py`` run into the docs' evidence, and apply the verdict.

Reads ``RUN/state.json`` and the arms' ``gammas.npz``; writes into ``--results``
(default ``benchmarks/results/dwd-study-v2``):

* ``results.json``: the settings, the move, every snapshot, every cut, the fine-tunes,
  the noise and the verdict with the number behind each criterion;
* ``results.md``: the tables and the verdict for the docs page and the README;
* ``<arm>-trained.pt``, ``<arm>-pruned-gap.pt``, ``<arm>-pruned-55.pt`` (and the
  fine-tuned one): the checkpoints behind the numbers, each under 1 MB (the legacy torch
  format, which ``load_model`` and ``sod100k evaluate`` read as any other checkpoint);

and into ``--figures`` (default ``docs/guide/img``): ``dwd-study-v2-gammas.png`` (expand
|gamma| histograms over the steps, per arm), ``dwd-study-v2-shares.png`` (share of expand
gammas below 1e-6 and BN input variance medians over the steps) and
``dwd-study-v2-curve.png`` (ECSSD max F against parameters, the three arms).

The verdict follows the criteria written in docs/guide/dwd-study.md before the run.

Usage:
    python benchmarks/dwd_study_report.py RUN [--results DIR] [--figures DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness
from sod100k.checkpoints.loading import load_model
from sod100k.utils.files import atomic_save, atomic_write_text

ARMS = ("dwd", "plain", "slim")
MAX_BYTES = 1_000_000
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- the verdict
def empty_decades_above(gammas: np.ndarray, below: float) -> float:
    """Decades between the largest gamma under ``below`` and the next gamma up
    (0 if none is under it; inf if none is above)."""
    g = np.sort(np.maximum(np.asarray(gammas, np.float64), 1.4e-45))
    under = g[g < below]
    if len(under) == 0:
        return 0.0
    over = g[g > under[-1]]
    return float("inf") if len(over) == 0 else float(np.log10(over[0] / under[-1]))


def widest_gap_decades(gammas: np.ndarray) -> float:
    logs = np.unique(np.log10(np.maximum(np.asarray(gammas, np.float64), 1.4e-45)))
    return float(np.diff(logs).max()) if len(logs) > 1 else 0.0


def verdict(facts: dict[str, Any]) -> dict[str, Any]:
    """Apply the pre-registered criteria to ``facts``.

    ``facts`` holds: ``dwd_expand`` / ``plain_expand`` (the arms' final expand |gamma|),
    ``dwd_var_expand`` (final median expand BN input variance), ``unpruned`` / ``gap`` /
    ``key`` per arm (``{"max_f", "mae"}`` on all of ECSSD; ``gap`` and ``key`` also
    ``removed`` (share of parameters) and ``made``/``met``), ``noise_f`` and
    ``noise_mae``.
    """
    d, p = np.asarray(facts["dwd_expand"]), np.asarray(facts["plain_expand"])
    share_d, share_p = float((d < 1e-6).mean()), float((p < 1e-6).mean())
    decades = empty_decades_above(d, 1e-6)
    c1 = share_d >= 0.30 and decades >= 3 and share_d >= 3 * share_p
    c1_clear_fail = (
        share_d < 0.10
        and widest_gap_decades(d) < 2
        and 0.1 <= facts["dwd_var_expand"] / 1.4e-6 <= 10
    )
    nf, nm = facts["noise_f"], facts["noise_mae"]
    base, gap = facts["unpruned"]["dwd"], facts["gap"]["dwd"]
    if gap.get("made", True):
        drop_f = base["max_f"] - gap["max_f"]
        rise_mae = gap["mae"] - base["mae"]
        c2 = gap["removed"] >= 0.40 and drop_f <= 0.01 and rise_mae <= 0.005
        c2_miss = gap["removed"] < 0.40 or drop_f > 0.01 + 2 * nf or rise_mae > 0.005 + 2 * nm
    else:
        drop_f = rise_mae = None
        c2, c2_miss = False, True
    key = facts["key"]
    f = {arm: key[arm]["max_f"] if key[arm].get("made", True) else None for arm in ARMS}
    if None in f.values():
        c3, c3_miss = False, f["dwd"] is None
    else:
        c3 = (
            key["dwd"].get("met", True)
            and f["dwd"] >= f["plain"] + 0.02
            and (f["dwd"] >= f["slim"] - 0.01)
        )
        c3_miss = f["dwd"] < f["plain"] + 0.02 - 2 * nf or f["dwd"] < f["slim"] - 0.01 - 2 * nf
    if c1 and c2 and c3:
        outcome = "reproduced"
    elif c1_clear_fail or c2_miss or c3_miss:
        outcome = "not reproduced"
    else:
        outcome = "inconclusive"
    return {
        "outcome": outcome,
        "criterion_1": {
            "holds": c1,
            "fails_clearly": c1_clear_fail,
            "dwd_share_below_1e-6": share_d,
            "plain_share_below_1e-6": share_p,
            "empty_decades_above": decades,
            "widest_gap_decades": widest_gap_decades(d),
            "dwd_var_expand": facts["dwd_var_expand"],
        },
        "criterion_2": {
            "holds": c2,
            "misses_by_more_than_2_noise": c2_miss,
            "removed": gap.get("removed"),
            "max_f_drop": drop_f,
            "mae_rise": rise_mae,
        },
        "criterion_3": {
            "holds": c3,
            "misses_by_more_than_2_noise": c3_miss,
            "max_f": f,
            "dwd_met": key["dwd"].get("met", True),
        },
        "noise": {"max_f": nf, "mae": nm},
    }


# ----------------------------------------------------------------------------- gathering
def facts_of(stages: dict[str, Any], expand: dict[str, np.ndarray], key: str) -> dict:
    """The numbers the verdict needs, from ``state.json``'s stages."""
    noise_f = noise_mae = 0.0
    for arm in ARMS:
        t = stages[f"train-{arm}"]
        noise_f = max(noise_f, abs(t["full"]["max_f"] - t["previous_full"]["max_f"]))
        noise_mae = max(noise_mae, abs(t["full"]["mae"] - t["previous_full"]["mae"]))

    def cut(arm: str, name: str) -> dict:
        c = stages[f"prune-{arm}-{name}"]
        if "error" in c:
            return {"made": False, "error": c["error"]}
        full = stages[f"unpruned-{arm}"]["params"]
        return {
            "made": True,
            "met": c["budget_met"],
            "removed": 1 - c["params"] / full,
            "max_f": c["full"]["max_f"],
            "mae": c["full"]["mae"],
        }

    return {
        "dwd_expand": expand["dwd"],
        "plain_expand": expand["plain"],
        "dwd_var_expand": stages["train-dwd"]["records"][-1]["var_median"]["expand"],
        "unpruned": {arm: stages[f"unpruned-{arm}"]["full"] for arm in ARMS},
        "gap": {arm: cut(arm, "gap") for arm in ARMS},
        "key": {arm: cut(arm, key) for arm in ARMS},
        "noise_f": noise_f,
        "noise_mae": noise_mae,
    }


def last_expand(run: Path, arm: str, step: int) -> np.ndarray:
    with np.load(run / f"arm-{arm}" / "gammas.npz") as g:
        return g[f"expand_{step}"]


# ----------------------------------------------------------------------------- tables
def cut_names(settings: dict) -> list[str]:
    return ["1e-20", "gap", *(f"-{round(100 * b)}%" for b in settings["budgets"])]


def launches(state: dict) -> list[dict]:
    """Where and when the study ran: one harness meta per launch, as ``dwd_study.py``
    records them; a run made before it recorded them gets the report's own machine,
    marked as such."""
    if state.get("launches"):
        return state["launches"]
    meta = harness.run_meta(note="machine of the report run; the study recorded none")
    return [meta]


def tables(state: dict, result: dict) -> str:
    s, stages = state["settings"], state["stages"]
    move = stages["move"]
    lines = [harness.describe_meta(m) + "\n" for m in launches(state)]
    lines += [
        "| arm | cut | threshold | params | FLOPs (224) | ECSSD-300 max F | ECSSD max F | "
        "ECSSD MAE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        u = stages[f"unpruned-{arm}"]
        lines.append(
            f"| {arm} | none | - | {u['params']:,} | {u['flops_224'] / 1e9:.3f} G | "
            f"{u['curve']['max_f']:.4f} | {u['full']['max_f']:.4f} | "
            f"{u['full']['mae']:.4f} |"
        )
        for name in cut_names(s):
            c = stages[f"prune-{arm}-{name}"]
            if "error" in c:
                lines.append(f"| {arm} | {name} | - | cannot be made: {c['error']} | | | | |")
                continue
            mark = "" if c["budget_met"] else "*"
            full = c.get("full")
            lines.append(
                f"| {arm} | {name}{mark} | {c['threshold']:.3g} | {c['params']:,} | "
                f"{c['flops_224'] / 1e9:.3f} G | {c['curve']['max_f']:.4f} | "
                + (f"{full['max_f']:.4f} | {full['mae']:.4f} |" if full else "| |")
            )
        if f"ft-{arm}" in stages:
            ft = stages[f"ft-{arm}"]
            lines.append(
                f"| {arm} | -{round(100 * s['key_budget'])}% + fine-tune | | "
                f"{ft['params']:,} | {ft['flops_224'] / 1e9:.3f} G | | "
                f"{ft['full']['max_f']:.4f} | {ft['full']['mae']:.4f} |"
            )
    lines += [
        "",
        "\\* budget not reachable with the reference rule without emptying a whole "
        "unit: the deepest cut it allows.",
        "",
    ]
    lines += [
        "Expand gammas over the steps (share below 1e-20 / 1e-6 / 1e-3, median; median "
        "BN input variance expand / dw1 / dw2; ECSSD-300 max F of the unpruned net):",
        "",
        "| arm | step | < 1e-20 | < 1e-6 | < 1e-3 | median | var expand / dw1 / dw2 | max F |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        for r in stages[f"train-{arm}"]["records"]:
            v = r["var_median"]
            lines.append(
                f"| {arm} | {r['step']} | {r['below_1e-20']:.1%} | {r['below_1e-6']:.1%} | "
                f"{r['below_1e-3']:.1%} | {r['expand_median']:.3g} | {v['expand']:.2g} / "
                f"{v['dw1']:.2g} / {v['dw2']:.2g} | {r['curve']['max_f']:.4f} |"
            )
    lm = move.get("logits_after_move", {})
    lines += [
        "",
        f"Move: {json.dumps(move.get('scales', {}))}",
        "",
        f"Logit change by the move (eval / train mode, max abs): "
        f"{lm.get('eval_max_abs', float('nan')):.3g} / "
        f"{lm.get('train_max_abs', float('nan')):.3g} (logit RMS "
        f"{lm.get('eval_logit_rms', float('nan')):.3g}); ECSSD-300 max F "
        f"{move['before']['ecssd']['max_f']:.4f} -> {move['after']['ecssd']['max_f']:.4f}",
        "",
        f"**Verdict: {result['outcome']}.**",
        "",
        "```json",
        json.dumps({k: v for k, v in result.items() if k != "outcome"}, indent=1, default=str),
        "```",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figures
def figures(run: Path, state: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages, s = state["stages"], state["settings"]
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    steps = [0, *(r["step"] for r in stages["train-dwd"]["records"])]
    shown = steps[:: max(1, len(steps) // 6)]
    if shown[-1] != steps[-1]:
        shown.append(steps[-1])
    fig, axes = plt.subplots(
        3, len(shown), figsize=(2.1 * len(shown), 6), sharex=True, squeeze=False
    )
    bins = np.logspace(-45, 1, 47)
    for r, arm in enumerate(ARMS):
        with np.load(run / f"arm-{arm}" / "gammas.npz") as g:
            for c, step in enumerate(shown):
                ax = axes[r][c]
                ax.hist(np.maximum(g[f"expand_{step}"], 1.4e-45), bins=bins, color=f"C{r}")
                ax.set_xscale("log")
                ax.set_title(f"{arm}, step {step}", fontsize=8)
    fig.supxlabel("expand |gamma| (exact zeros in the first bin)")
    fig.tight_layout()
    paths.append(out / "dwd-study-v2-gammas.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for r, arm in enumerate(ARMS):
        recs = stages[f"train-{arm}"]["records"]
        x = [rec["step"] for rec in recs]
        ax[0].plot(x, [rec["below_1e-6"] for rec in recs], marker="o", color=f"C{r}", label=arm)
        for kind, style in zip(("expand", "dw1", "dw2"), ("-", "--", ":"), strict=True):
            ax[1].plot(
                x,
                [rec["var_median"][kind] for rec in recs],
                style,
                color=f"C{r}",
                label=f"{arm} {kind}",
            )
    ax[0].set(title="share of expand |gamma| < 1e-6", xlabel="step", ylim=(-0.02, 1.02))
    ax[1].set(title="median BN input variance", xlabel="step", yscale="log")
    ax[1].axhline(1e-5, color="gray", lw=0.8)
    ax[0].legend()
    ax[1].legend(fontsize=6, ncol=3)
    fig.tight_layout()
    paths.append(out / "dwd-study-v2-shares.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for r, arm in enumerate(ARMS):
        pts = [(stages[f"unpruned-{arm}"]["params"], stages[f"unpruned-{arm}"]["curve"]["max_f"])]
        for name in cut_names(s):
            c = stages[f"prune-{arm}-{name}"]
            if "error" not in c:
                pts.append((c["params"], c["curve"]["max_f"]))
                if name == "gap":
                    ax.annotate("gap", (c["params"], c["curve"]["max_f"]), fontsize=7)
        pts.sort()
        ax.plot(*zip(*pts, strict=True), marker="o", color=f"C{r}", label=arm)
    ax.set(
        xlabel="parameters",
        ylabel=f"ECSSD max F (first {s['curve_images']} images)",
        title="pruned with BN re-estimation only",
    )
    ax.legend()
    fig.tight_layout()
    paths.append(out / "dwd-study-v2-curve.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


# ----------------------------------------------------------------------------- checkpoints
def compact_copy(src: Path, dst: Path) -> int:
    """Copy a checkpoint in torch's legacy (non-zip) format, ~10 % smaller for a net of
    many small tensors; refuses to write one of 1 MB or more. Returns its size."""
    payload = torch.load(src, map_location="cpu", weights_only=True)
    atomic_save(dst, lambda f: torch.save(payload, f, _use_new_zipfile_serialization=False))
    size = dst.stat().st_size
    if size >= MAX_BYTES:
        dst.unlink()
        raise SystemExit(f"{dst}: {size:,} bytes, over the 1 MB limit for committed files")
    load_model(weights=str(dst))  # it loads as any other checkpoint
    return size


def checkpoints(run: Path, state: dict, out: Path) -> dict[str, int]:
    key = f"-{round(100 * state['settings']['key_budget'])}%"
    sizes = {}
    for arm in ARMS:
        names = {
            "trained.pt": "trained",
            "pruned-gap.pt": "pruned-gap",
            f"pruned{key}.pt": f"pruned{key}",
            f"finetuned{key}.pt": f"finetuned{key}",
        }
        for src, name in names.items():
            path = run / f"arm-{arm}" / src
            if path.exists():
                dst = out / f"{arm}-{name.replace('%', '')}.pt"
                sizes[dst.name] = compact_copy(path, dst)
    return sizes


# ----------------------------------------------------------------------------- re-scoring
def recorded_scores(state: dict) -> dict[str, dict]:
    """The all-of-ECSSD score behind each committed checkpoint, by file name."""
    stages, key = state["stages"], f"-{round(100 * state['settings']['key_budget'])}%"
    out = {}
    for arm in ARMS:
        out[f"{arm}-trained.pt"] = stages[f"train-{arm}"]["full"]
        for cut, name in (("gap", "pruned-gap"), (key, f"pruned{key}")):
            stage = stages.get(f"prune-{arm}-{cut}", {})
            if "full" in stage:
                out[f"{arm}-{name.replace('%', '')}.pt"] = stage["full"]
        if f"ft-{arm}" in stages:
            out[f"{arm}-finetuned{key.replace('%', '')}.pt"] = stages[f"ft-{arm}"]["full"]
    return out


def rescore(checkpoint: Path, ecssd: Path, size: int, work: Path) -> dict[str, float]:
    """Score ``checkpoint`` on all of ``ecssd`` with ``sod100k benchmark`` (a subprocess,
    the command a reader would run) at the study's input size."""
    cmd = [
        sys.executable,
        "-m",
        "sod100k",
        "benchmark",
        "--weights",
        str(checkpoint),
        "--size",
        str(size),
        "--backend",
        "torch",
        "--quiet",
        "--output",
        str(work),
        "--dataset",
        f"ECSSD={ecssd / 'images'}:{ecssd / 'masks'}",
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result = json.loads((work / "results.json").read_text())["results"][0]
    return {
        "images": result["count"],
        "max_f": result["metrics"]["maxF"],
        "mae": result["metrics"]["MAE"],
    }


def verify(state: dict, results: Path, ecssd: Path, tolerance: float = 0.003) -> dict:
    """Re-score every committed checkpoint; each must land within ``tolerance`` max F of
    the number the study recorded for it (the issue's criterion for the evidence)."""
    out = {}
    size = state["settings"]["size"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, recorded in recorded_scores(state).items():
            if not (results / name).exists():
                continue
            got = rescore(results / name, ecssd, size, Path(tmp) / name)
            if got["images"] != recorded["images"]:
                raise SystemExit(
                    f"{name}: scored on {got['images']} images, the study on {recorded['images']}"
                )
            diff = abs(got["max_f"] - recorded["max_f"])
            out[name] = {
                "recorded": recorded["max_f"],
                "rescored": got["max_f"],
                "diff": diff,
                "ok": diff <= tolerance,
            }
    return out


# ----------------------------------------------------------------------------- main
def report(run: Path, results: Path, figures_dir: Path, ecssd: Path | None = None) -> dict:
    state = json.loads((run / "state.json").read_text())
    stages, s = state["stages"], state["settings"]
    if "finished" not in state:
        raise SystemExit(f"{run}: the study has not finished (re-run dwd_study.py on it first)")
    final = s["steps"] + s["low_steps"]
    expand = {arm: last_expand(run, arm, final) for arm in ARMS}
    key = f"-{round(100 * s['key_budget'])}%"
    result = verdict(facts_of(stages, expand, key))
    results.mkdir(parents=True, exist_ok=True)
    sizes = checkpoints(run, state, results)
    pictures = figures(run, state, figures_dir)
    payload = {
        "machine": launches(state),
        "settings": s,
        "finished": state["finished"],
        "verdict": result,
        "stages": stages,
        "checkpoints": sizes,
        "figures": [str(p) for p in pictures],
    }
    if ecssd is not None:
        payload["rescored"] = verify(state, results, ecssd)
    atomic_write_text(results / "results.json", json.dumps(payload, indent=1, default=str))
    atomic_write_text(results / "results.md", tables(state, result))
    return payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path, help="the study's --out folder")
    p.add_argument("--results", type=Path, default=HERE / "results" / "dwd-study-v2")
    p.add_argument("--figures", type=Path, default=HERE.parent / "docs" / "guide" / "img")
    p.add_argument(
        "--verify",
        type=Path,
        metavar="ECSSD",
        help="re-score every committed checkpoint on this ECSSD folder with `sod100k "
        "benchmark` and check it lands within 0.003 max F of the recorded number",
    )
    args = p.parse_args(argv)
    payload = report(args.run, args.results, args.figures, args.verify)
    print((args.results / "results.md").read_text())
    print(f"checkpoints: {payload['checkpoints']}")
    print(f"verdict: {payload['verdict']['outcome']}")
    if "rescored" in payload:
        bad = {k: v for k, v in payload["rescored"].items() if not v["ok"]}
        print(f"re-scored {len(payload['rescored'])} checkpoints; off by > 0.003 max F: {bad}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
