"""Statistics over seeds: the mean of a measure with its Student-t interval, and one condition against a
reference with Welch's test. Seeds are independent runs, so intervals are over runs and tests are unpaired."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats


def seed_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds and its Student-t confidence interval; NaN bounds for one seed."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return mean, float(mean - half), float(mean + half)


def interval_table(finals: pd.DataFrame, by: str, value: str = "final_dims95", level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by`: seeds, mean of `value` with its t-interval (low, high), and the seeds' range."""
    rows = []
    for key, group in finals.groupby(by, sort=True):
        mean, low, high = seed_interval(group[value], level)
        rows.append(
            {
                by: key,
                "seeds": len(group),
                "mean": mean,
                "low": low,
                "high": high,
                "min": group[value].min(),
                "max": group[value].max(),
            }
        )
    return pd.DataFrame(rows, columns=[by, "seeds", "mean", "low", "high", "min", "max"])


def difference_table(finals: pd.DataFrame, by: str, reference, value: str = "final_dims95") -> pd.DataFrame:
    """Each condition against a reference condition: one row per value of `by` other than `reference`, with the
    seeds on each side, the two means of `value`, their difference, and the two-sided p-value of Welch's t-test
    (NaN with fewer than 2 seeds on a side, or no spread at all). Seeds are independent runs, so the test is
    the unpaired one."""
    base = finals.loc[finals[by] == reference, value].to_numpy(float)
    rows = []
    for key, group in finals[finals[by] != reference].groupby(by, sort=True):
        x = group[value].to_numpy(float)
        testable = len(x) > 1 and len(base) > 1 and (x.std() > 0 or base.std() > 0)
        with warnings.catch_warnings():  # one side without spread (all seeds equal) is fine for Welch's test,
            warnings.simplefilter("ignore", RuntimeWarning)  # but scipy warns of "catastrophic cancellation"
            p = float(stats.ttest_ind(x, base, equal_var=False).pvalue) if testable else float("nan")
        mean = float(x.mean())
        ref_mean = float(base.mean()) if len(base) else float("nan")
        rows.append({by: key, "seeds": len(x), "mean": mean, "reference_seeds": len(base),
                     "reference_mean": ref_mean, "difference": mean - ref_mean, "p_welch": p})  # fmt: skip
    columns = [by, "seeds", "mean", "reference_seeds", "reference_mean", "difference", "p_welch"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def format_interval(mean: float, low: float, high: float, fmt: str = ".3g") -> str:
    """ "mean (low to high)", or "mean (n/a, 1 seed)" where the interval is undefined (NaN bounds)."""
    return f"{mean:{fmt}} (n/a, 1 seed)" if np.isnan(low) else f"{mean:{fmt}} ({low:{fmt}} to {high:{fmt}})"


def interval_text(values, fmt: str = ".3g", level: float = 0.95) -> str:
    """The mean of `values` over seeds with its t-interval, as `format_interval`."""
    return format_interval(*seed_interval(values, level), fmt)


def intervals_by(frame: pd.DataFrame, by: str, columns: dict[str, str], level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by` (the number of seeds, then each column of `columns` {column: format} as
    `interval_text`), one column per entry: the means over seeds with their t-intervals, side by side."""
    return frame.groupby(by, sort=True).agg(
        seeds=(by, "size"), **{c: (c, lambda v, f=f: interval_text(v, f, level)) for c, f in columns.items()}
    )
