#!/usr/bin/env python3
"""Recomputes a report's claim verdicts from its results.csv, independently of oodpipe.

For every comparison of claims.csv tested with the paired t test (a report of several seeds), the
per-seed differences come from results.csv's per-seed rows, their p-value from
scipy.stats.ttest_1samp (two-sided; for `~` the TOST rule of the README), the adjusted p-values
from statsmodels' Benjamini-Hochberg over every tested comparison of the file (paired-bootstrap
p-values, of one-seed reports, are taken from claims.csv as they are), and the verdicts by the
README's rule ("Claims"). Exits 1 and names each difference.

    python3 scripts/check_claims.py reports/seeds

Needs numpy, scipy and statsmodels (pip install scipy statsmodels).
"""
import csv
import sys
from pathlib import Path

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

LOWER_IS_BETTER = {"fpr_at_95_tpr", "detection_error"}


def main(folder: Path) -> int:
    results = list(csv.DictReader(open(folder / "results.csv")))
    claims = list(csv.DictReader(open(folder / "claims.csv")))
    per_seed = {}
    for r in results:
        if r["seed"] != "all":
            per_seed.setdefault((r["ood_set"], r["method"], r["metric"]), {})[r["seed"]] = float(r["value"])
    margins = {}
    toml_path = Path("configs/claims.toml")
    if toml_path.exists():
        import tomllib

        for i, c in enumerate(tomllib.loads(toml_path.read_text())["claim"]):
            margins[str(i + 1)] = c.get("margin")
    tested = [c for c in claims if c["test"]]
    p = []
    for c in tested:
        if c["test"] != "paired t":
            p.append(float(c["p"]))
            continue
        a = per_seed[(c["set"], c["a"], c["metric"])]
        b = per_seed[(c["set"], c["b"], c["metric"])]
        seeds = sorted(set(a) & set(b), key=int)
        d = np.array([a[s] - b[s] for s in seeds])
        if " ~ " in c["comparison"]:
            m = margins[c["claim"]]
            se = d.std(ddof=1) / np.sqrt(len(d))
            df = len(d) - 1
            inside = max(stats.t.sf((d.mean() + m) / se, df), stats.t.cdf((d.mean() - m) / se, df))
            beyond = stats.t.sf((d.mean() - m) / se, df) if d.mean() >= 0 else stats.t.cdf((d.mean() + m) / se, df)
            p.append(min(1.0, 2 * min(inside, beyond)))
            c["_equivalent"] = inside <= beyond
        else:
            p.append(stats.ttest_1samp(d, 0.0).pvalue)
    adjusted = multipletests(p, method="fdr_bh")[1] if p else []
    problems = 0
    for c, pv, adj in zip(tested, p, adjusted):
        if adj > 0.05:
            verdict = "not resolved at this noise"
        elif " ~ " in c["comparison"]:
            verdict = "holds" if c.get("_equivalent") else "reversed"
        else:
            better = (float(c["difference"]) > 0) != (c["metric"] in LOWER_IS_BETTER)
            verdict = "holds" if better else "reversed"
        for name, ours, theirs in [("p", pv, float(c["p"])), ("adjusted p", adj, float(c["p_adjusted"]))]:
            if abs(ours - theirs) > 1e-9 * max(1.0, abs(ours)):
                print(f"claim {c['claim']} {c['comparison']} {c['set']} {c['metric']}: {name} {theirs} in claims.csv, {ours} recomputed")
                problems += 1
        if verdict != c["verdict"]:
            print(f"claim {c['claim']} {c['comparison']} {c['set']} {c['metric']}: verdict {c['verdict']!r}, recomputed {verdict!r}")
            problems += 1
    print(f"{len(tested)} tested comparisons recomputed ({sum(c['test'] == 'paired t' for c in tested)} paired t from results.csv), {problems} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/seeds")))
