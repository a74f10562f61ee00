"""Writes roundtrip.md for scripts/roundtrip.sh: the native and the imported softmax network's
logits per set and split (max absolute difference), every value of their two reports (max
absolute difference per metric, and the largest), and the outputs stage's time of each."""

import argparse
import csv
import platform
import statistics
from collections import defaultdict

from safetensors.numpy import load_file


def results(path):
    with open(path, newline="") as f:
        return {(r["ood_set"], r["method"], r["metric"], r["seed"]): float(r["value"]) for r in csv.DictReader(f)}


def cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser()
    for a in ("--pairs", "--timings", "--native", "--imported", "--config", "--out"):
        p.add_argument(a, required=True)
    a = p.parse_args()
    lines = [f"# The round trip of `{a.config}`'s softmax network", ""]
    lines += [
        "Exported by `oodpipe export train.softmax` to TorchScript (through `oodpipe_wrn.py`, the WRN in PyTorch's own "
        "layers), imported back as `[networks.softmax_rt]`, and every stage of its pipeline built "
        f"(`scripts/roundtrip.sh`, on {cpu()}). Training repeats bit for bit only on one processor kind: "
        "the native report here is this machine's, not necessarily the committed default report's.",
        "",
        "## Logits",
        "",
        "| set | split | images | max abs difference |",
        "|---|---|---:|---:|",
    ]
    worst_logit = 0.0
    for line in open(a.pairs):
        name, native, imported = line.split()
        n, i = load_file(native), load_file(imported)
        for split in ("val", "test"):
            x, y = n[f"{split}_logits"], i[f"{split}_logits"]
            d = float(abs(x.astype("float64") - y.astype("float64")).max())
            worst_logit = max(worst_logit, d)
            lines.append(f"| {name} | {split} | {len(x)} | {d:.2e} |")
    native, imported = results(a.native), results(a.imported)
    missing = [k for k in imported if k not in native]
    per_metric = defaultdict(float)
    worst = (0.0, None)
    for k, v in imported.items():
        if k in native:
            d = abs(v - native[k])
            per_metric[k[2]] = max(per_metric[k[2]], d)
            if d >= worst[0]:
                worst = (d, k)
    lines += ["", "## Every value of the two reports", ""]
    lines.append(f"{len(imported)} values of the imported network's `results.csv` ({len(missing)} without a native counterpart), "
                 f"against the native report's (percent points):")
    lines += ["", "| metric | max abs difference |", "|---|---:|"]
    lines += [f"| {m} | {d:.4f} |" for m, d in sorted(per_metric.items())]
    if worst[1]:
        lines += ["", f"Largest: {worst[0]:.4f} ({', '.join(worst[1])})."]
    times = defaultdict(list)
    for line in open(a.timings):
        stage, seconds = line.rsplit(" ", 1)
        times[stage].append(float(seconds))
    lines += ["", "## The outputs stage on CIFAR-10", "", "| stage | runs | seconds (each) | median |", "|---|---:|---|---:|"]
    medians = {}
    for stage, ts in times.items():
        medians[stage] = statistics.median(ts)
        lines.append(f"| `{stage}` | {len(ts)} | {', '.join(f'{t:.2f}' for t in ts)} | {medians[stage]:.2f} |")
    if len(medians) == 2:
        (s1, m1), (s2, m2) = medians.items()
        lines += ["", f"Imported against native: {m2 / m1:.3f}x the native stage's median time."]
    lines += ["", f"Verdict: logits within 1e-4: {'yes' if worst_logit <= 1e-4 else 'NO'} (max {worst_logit:.2e}); "
              f"AUROC within 0.05 points: {'yes' if per_metric.get('auroc', 0) <= 0.05 else 'NO'}; "
              f"FPR at 95% TPR within 0.3: {'yes' if per_metric.get('fpr_at_95_tpr', 0) <= 0.3 else 'NO'}.", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
