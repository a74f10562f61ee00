"""The reference values of metrics/tests/significance.rs that come from statsmodels and scipy.

Not run by the tests (they hold the numbers this printed); run it to check or extend them:
    python3 -m venv /tmp/stats && /tmp/stats/bin/pip install statsmodels==0.14.5 scipy==1.17.1
    /tmp/stats/bin/python scripts/significance_fixtures.py
"""
import numpy as np
import scipy
import statsmodels
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

print(f"statsmodels {statsmodels.__version__}, scipy {scipy.__version__}")
for p in ([0.01, 0.04, 0.03, 0.005, 0.2, 0.6], [0.002, 0.002, 0.002, 0.0045, 0.03, 0.2677, 0.9, 0.002, 0.011]):
    for method in ("fdr_bh", "fdr_by", "holm"):
        print(method, [float(x) for x in multipletests(p, method=method)[1]])

# TOST: equivalence within (-m, m) of the paired differences, and of two independent samples
# (Welch's variances): the p-value is the larger of the two one-sided tests'.
a, b = np.array([82.52, 81.97, 81.78]), np.array([75.13, 74.58, 74.38])
print("ttost_paired within 8", float(ttost_paired(a, b, -8.0, 8.0)[0]))
d = np.array([1.5, 2.5, 0.7])
print("ttost_paired within 5", float(ttost_paired(d, np.zeros(3), -5.0, 5.0)[0]))
print("ttost_paired within 3", float(ttost_paired(d, np.zeros(3), -3.0, 3.0)[0]))
x, y = np.array([19.1, 23.4, 18.7, 25.0, 21.3]), np.array([14.2, 17.9, 16.1])
print("ttost_ind unequal within 9", float(ttost_ind(x, y, -9.0, 9.0, usevar="unequal")[0]))

# The smallest margin TOST passes at 0.05 for the paired differences d: |mean| + t(0.95, 2) se.
from scipy import stats

se = d.std(ddof=1) / np.sqrt(3)
bound = abs(d.mean()) + stats.t.ppf(0.95, 2) * se
print("equivalence bound", float(bound), "ttost_paired there", float(ttost_paired(d, np.zeros(3), -bound, bound)[0]))
