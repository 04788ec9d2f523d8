"""Deadlines per second: Kefu's scalar and vectorised paths against `businesstimedelta` on the same inputs.

Same business windows (09:00-12:00, 15:00-18:00 = a 09:00-18:00 day with a 12:00-15:00 break), same
Chinese public holidays. businesstimedelta cannot express make-up working days (调休), so answers are
compared only where no make-up day lies in the span; the rest is reported as a count.

    .venv/bin/python bench/deadlines.py [--n-vector 1000000] [--n-scalar 20000] [--n-baseline 2000]

Prints one JSON object. Ratios compare runs made in this same process, since machines are noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pytz
from businesstimedelta import BusinessTimeDelta, HolidayRule, LunchTimeRule, Rules, WorkDayRule

from kefu.models.policy import Duration, current_policy
from kefu.worktime import WorkCalendar
from kefu.worktime.calendar import NS_PER_SECOND, to_ns

CST = ZoneInfo("Asia/Shanghai")


def random_starts(n: int, seed: int = 7) -> np.ndarray:
    lo = to_ns(dt.datetime(2025, 1, 1, tzinfo=CST))
    hi = to_ns(dt.datetime(2026, 12, 1, tzinfo=CST))
    rng = np.random.default_rng(seed)
    seconds = rng.integers(lo // NS_PER_SECOND, hi // NS_PER_SECOND, size=n, dtype=np.int64)
    return seconds * NS_PER_SECOND


def as_datetimes(ns: np.ndarray) -> list[dt.datetime]:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return [(epoch + dt.timedelta(seconds=int(v) // NS_PER_SECOND)).astimezone(CST) for v in ns]


def best_of(runs: int, fn: object) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-vector", type=int, default=1_000_000)
    parser.add_argument("--n-scalar", type=int, default=20_000)
    parser.add_argument("--n-baseline", type=int, default=2_000)
    parser.add_argument("--hours", type=float, default=4.0)
    args = parser.parse_args()

    calendar = WorkCalendar(current_policy())
    duration = Duration(amount=args.hours, unit="working_hours")
    days = Duration(amount=7, unit="working_days")
    vector_starts = random_starts(args.n_vector)
    scalar_starts = as_datetimes(vector_starts[: args.n_scalar])
    baseline_starts = scalar_starts[: args.n_baseline]
    calendar.deadlines_ns(vector_starts[:10], duration)  # build the tables outside the timing

    vector_s = best_of(3, lambda: calendar.deadlines_ns(vector_starts, duration))
    vector_days_s = best_of(3, lambda: calendar.deadlines_ns(vector_starts, days))
    scalar_s = best_of(3, lambda: [calendar.deadline(s, duration) for s in scalar_starts])

    tz = pytz.timezone("Asia/Shanghai")
    cn = holidays.country_holidays("CN", years=range(2024, 2028))
    rules = Rules(
        [
            WorkDayRule(start_time=dt.time(9), end_time=dt.time(18), working_days=[0, 1, 2, 3, 4], tz=tz),
            LunchTimeRule(start_time=dt.time(12), end_time=dt.time(15), working_days=[0, 1, 2, 3, 4], tz=tz),
            HolidayRule(cn, tz=tz),
        ]
    )
    delta = BusinessTimeDelta(rules, hours=int(args.hours), seconds=int((args.hours % 1) * 3600))
    baseline_answers: list[dt.datetime] = []

    def run_baseline() -> None:
        baseline_answers.clear()
        baseline_answers.extend(s + delta for s in baseline_starts)

    baseline_s = best_of(1, run_baseline)

    ours = calendar.deadlines([*baseline_starts], duration)
    comparable = agree = makeup_spans = 0
    for start, mine, theirs in zip(baseline_starts, ours, baseline_answers, strict=True):
        span_days = [start.date() + dt.timedelta(n) for n in range((mine.date() - start.date()).days + 1)]
        if any(d in cn.weekend_workdays for d in span_days):
            makeup_spans += 1
            continue
        comparable += 1
        agree += int(mine == theirs)

    per_vector = vector_s / args.n_vector
    per_scalar = scalar_s / args.n_scalar
    per_baseline = baseline_s / args.n_baseline
    print(
        json.dumps(
            {
                "benchmark": "deadlines",
                "unit": str(duration),
                "vectorised_per_s": round(args.n_vector / vector_s),
                "vectorised_working_days_per_s": round(args.n_vector / vector_days_s),
                "scalar_per_s": round(args.n_scalar / scalar_s),
                "businesstimedelta_per_s": round(args.n_baseline / baseline_s),
                "speedup_vectorised_vs_businesstimedelta": round(per_baseline / per_vector, 1),
                "speedup_scalar_vs_businesstimedelta": round(per_baseline / per_scalar, 1),
                "compared": comparable,
                "agree": agree,
                "spans_with_make_up_days_not_comparable": makeup_spans,
                "inputs": {"vector": args.n_vector, "scalar": args.n_scalar, "baseline": args.n_baseline},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
