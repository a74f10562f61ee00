#!/usr/bin/env python3
"""Recomputes a report's claim verdicts from its results.csv and claims.csv, independently of oodpipe.

For every distinct tested comparison of claims.csv (a row whose `same_test_as_row` is empty; a
repeated comparison carries its first row's test): with several seeds, the per-seed differences
come from results.csv's per-seed rows and the paired t test's p-value from scipy (two-sided, or
for `~` the README's TOST rule), and the p the verdict uses is the larger of that and the
two-level bootstrap's p (`two_level_p`, taken from claims.csv: it needs the stored replicates);
with one seed, the paired bootstrap's p is taken from claims.csv as it is. Then the differences
are checked against results.csv, the adjusted p-values recomputed with statsmodels'
Benjamini-Yekutieli over the distinct tests, and the verdicts by the README's rule ("Claims").
Exits 1 and names each difference.

    python3 scripts/check_claims.py reports/seeds

Needs numpy, scipy and statsmodels (pip install scipy statsmodels).
"""
import csv
import sys
import tomllib
from pathlib import Path

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

LOWER_IS_BETTER = {"fpr_at_95_tpr", "detection_error"}


def margins_of(path: Path) -> dict:
    """(claim, part) -> the part's margin, both 1-based as in claims.csv."""
    out = {}
    for i, claim in enumerate(tomllib.loads(path.read_text()).get("claim", [])):
        parts = claim.get("part") or [claim]
        for j, part in enumerate(parts):
            out[(str(i + 1), str(j + 1))] = part.get("margin")
    return out


def main(folder: Path) -> int:
    results = list(csv.DictReader(open(folder / "results.csv")))
    rows = list(csv.DictReader(open(folder / "claims.csv")))
    value = {(r["ood_set"], r["method"], r["metric"], r["seed"]): float(r["value"]) for r in results}
    per_seed = {}
    for r in results:
        if r["seed"] != "all":
            per_seed.setdefault((r["ood_set"], r["method"], r["metric"]), {})[r["seed"]] = float(r["value"])
    margins = margins_of(Path("configs/claims.toml"))
    problems = 0

    def differ(c, what, ours, theirs):
        nonlocal problems
        if abs(ours - theirs) > 1e-9 * max(1.0, abs(ours)):
            print(f"claim {c['claim']}.{c['part']} {c['comparison']} {c['set']} {c['metric']}: {what} {theirs} in claims.csv, {ours} recomputed")
            problems += 1

    tested = [c for c in rows if c["test"]]
    for c in tested:
        differ(c, "difference", value[(c["set"], c["a"], c["metric"], "all")] - value[(c["set"], c["b"], c["metric"], "all")], float(c["difference"]))
    distinct = [c for c in tested if not c["same_test_as_row"]]
    p = []
    for c in distinct:
        if c["test"] == "paired bootstrap":
            p.append(float(c["p"]))
            continue
        a = per_seed[(c["set"], c["a"], c["metric"])]
        b = per_seed[(c["set"], c["b"], c["metric"])]
        seeds = sorted(set(a) & set(b), key=int)
        d = np.array([a[s] - b[s] for s in seeds])
        if " ~ " in c["comparison"]:
            m = margins[(c["claim"], c["part"])]
            se = d.std(ddof=1) / np.sqrt(len(d))
            df = len(d) - 1
            inside = max(stats.t.sf((d.mean() + m) / se, df), stats.t.cdf((d.mean() - m) / se, df))
            beyond = stats.t.sf((d.mean() - m) / se, df) if d.mean() >= 0 else stats.t.cdf((d.mean() + m) / se, df)
            pt = min(1.0, 2 * min(inside, beyond))
        else:
            pt = stats.ttest_1samp(d, 0.0).pvalue
        p.append(max(pt, float(c["two_level_p"])) if c["two_level_p"] else pt)
    adjusted = multipletests(p, method="fdr_by")[1] if p else []
    by_row = {}
    for c, pv, adj in zip(distinct, p, adjusted):
        differ(c, "p", pv, float(c["p"]))
        differ(c, "adjusted p", adj, float(c["p_adjusted"]))
        by_row[id(c)] = adj
    for c in tested:
        first = rows[int(c["same_test_as_row"]) - 1] if c["same_test_as_row"] else c
        adj = by_row[id(first)]
        if adj > 0.05:
            verdict = "not resolved at this noise"
        elif " ~ " in c["comparison"]:
            verdict = first["verdict"]  # which side of the margin: the TOST's, taken as reported
        else:
            better = (float(c["difference"]) > 0) != (c["metric"] in LOWER_IS_BETTER)
            verdict = "holds" if better else "reversed"
        if verdict != c["verdict"]:
            print(f"claim {c['claim']}.{c['part']} {c['comparison']} {c['set']} {c['metric']}: verdict {c['verdict']!r}, recomputed {verdict!r}")
            problems += 1
    print(
        f"{len(tested)} tested comparisons, {len(distinct)} distinct tests recomputed "
        f"({sum(c['test'] != 'paired bootstrap' for c in distinct)} paired t from results.csv), {problems} differences"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/seeds")))
