"""Key-account figures at scale: the monthly identification (every customer scored) and the KPIs (every customer's
every month) for 100,000 customers × 12 months of business figures, vectorised with pandas
(``kefu.tasks.account_scores``, what the monthly flow and ``kefu account show`` run) against a per-customer Python
loop of the same computation in the same run, on the same data.

Prints one JSON object: seconds of each (the best of ``--repeat`` runs, 3 by default), the ratio, whether the
figures are equal (scores to 1e-6, KPIs to 1e-9, NaN where a month has no orders), and whether the loop ran on a
sample (``--loop-sample N``: N customers, its time extrapolated to all of them).
Goal: vectorised ≤ 5 s and ≥ 20× the loop.

    .venv/bin/python bench/accounts.py [--customers 100000] [--months 12] [--loop-sample 0]
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kefu.models.policy import IdentificationPolicy, load_policy
from kefu.tasks.account_scores import monthly_kpis, score_customers

POLICY = Path(__file__).resolve().parent.parent / "policy" / "kefu.yaml"
INDUSTRIES = ["电子", "汽车", "医药", "零售", "电商", "制造", "化工", "服装", None]


def dataset(customers: int, months: int, seed: int = 15) -> tuple[pd.DataFrame, pd.DataFrame, dt.date]:
    rng = np.random.default_rng(seed)
    last = pd.Timestamp(2026, 11, 1)
    month_list = pd.date_range(end=last, periods=months, freq="MS")
    ids = np.repeat(np.arange(1, customers + 1), months)
    orders = rng.poisson(rng.gamma(2.0, 40.0, customers).repeat(months)).astype("int64")
    orders[rng.random(ids.size) < 0.02] = 0  # some months without orders: no rates
    figures = pd.DataFrame(
        {
            "customer_id": ids,
            "month": np.tile(month_list.to_numpy(), customers),
            "orders": orders,
            "volume": np.round(orders * rng.uniform(50, 500, ids.size), 2),
            "orders_on_time": rng.binomial(orders, 0.96),
            "deliveries_on_time": rng.binomial(orders, 0.94),
            "complaints": rng.binomial(orders, 0.01),
        }
    )
    industry = rng.choice(np.array(INDUSTRIES, dtype=object), customers)
    frame = pd.DataFrame({"customer_id": np.arange(1, customers + 1), "industry": industry})
    return figures, frame, last.date()


def loop_scores(
    rows: dict[int, list[tuple[dt.date, float]]], industries: dict[int, str | None], rules: IdentificationPolicy,
    as_of: dt.date, customer_ids: list[int], all_volumes: list[float] | None,
) -> tuple[dict[int, float], list[float]]:  # fmt: skip
    """The score of each of ``customer_ids``, one customer at a time (rank against ``all_volumes``, sorted)."""
    last = pd.Timestamp(as_of.year, as_of.month, 1)
    first = (last - pd.DateOffset(months=rules.months - 1)).date()
    recent_from = (last - pd.DateOffset(months=rules.growth_months - 1)).date()
    before_from = (recent_from - pd.DateOffset(months=rules.growth_months)).date()
    last = last.date()
    w = {k: c.weight for k, c in rules.criteria.items()}
    sums: dict[int, tuple[float, float, float]] = {}
    for cid in customer_ids:
        volume = recent = before = 0.0
        for month, value in rows.get(cid, ()):
            if first <= month <= last:
                volume += value
            if recent_from <= month <= last:
                recent += value
            if before_from <= month < recent_from:
                before += value
        sums[cid] = (volume, recent, before)
    ranked = all_volumes if all_volumes is not None else sorted(v for v, _, _ in sums.values() if v > 0)
    scores: dict[int, float] = {}
    for cid in customer_ids:
        volume, recent, before = sums[cid]
        business = bisect.bisect_right(ranked, volume) / len(ranked) if volume > 0 else 0.0
        potential = min(max((recent - before) / before, 0.0), 1.0) if before > 0 else (1.0 if recent > 0 else 0.0)
        influence = rules.industry_influence.get(industries[cid] or "", rules.industry_influence_default)
        total = w["business_volume"] * business + w["cooperation_potential"] * potential
        score = 100.0 * (total + w["industry_influence"] * influence)
        scores[cid] = round(score * 100.0) / 100.0  # to the hundredth as numpy rounds (half to even)
    return scores, ranked


def loop_kpis(rows: list[tuple[int, int, int, int, int]]) -> list[tuple[float, float, float]]:
    out = []
    for _cid, orders, on_time, delivered, complaints in rows:
        if orders > 0:
            out.append((on_time / orders, delivered / orders, complaints / orders))
        else:
            out.append((math.nan, math.nan, math.nan))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--loop-sample", type=int, default=0, help="loop over this many customers and extrapolate")
    parser.add_argument("--repeat", type=int, default=3, help="time each side this many times, keep the best")
    args = parser.parse_args()
    rules = load_policy(POLICY).key_accounts.identification
    figures, customers, as_of = dataset(args.customers, args.months)

    vectorised = math.inf
    for _ in range(args.repeat):  # the best of --repeat runs, for each side
        started = time.perf_counter()
        scores = score_customers(figures, customers, rules, as_of)
        kpis = monthly_kpis(figures)
        vectorised = min(vectorised, time.perf_counter() - started)

    # The loop's input: the same rows as plain Python values, as the database gives them (dates, not timed: both
    # start from loaded data). Grouping them per customer is part of the loop's work, as it is of the vectorised one.
    rows = list(
        zip(figures["customer_id"].tolist(), [m.date() for m in figures["month"]], figures["volume"].tolist(),
            *(figures[c].tolist() for c in ("orders", "orders_on_time", "deliveries_on_time", "complaints")),
            strict=True)
    )  # fmt: skip
    industries = dict(zip(customers["customer_id"].tolist(), customers["industry"].tolist(), strict=True))
    ids = customers["customer_id"].tolist()
    sample = ids if not args.loop_sample or args.loop_sample >= len(ids) else ids[: args.loop_sample]
    all_volumes = None
    if len(sample) < len(ids):  # the ranks need every customer's volume: from the vectorised sums, not timed
        all_volumes = sorted(v for v in scores["volume"].tolist() if v > 0)
        wanted = set(sample)
        rows = [r for r in rows if r[0] in wanted]
    looped = math.inf
    for _ in range(args.repeat):
        started = time.perf_counter()
        per_customer: dict[int, list[tuple[dt.date, float]]] = {}
        for row in rows:
            per_customer.setdefault(row[0], []).append((row[1], row[2]))
        loop_score, _ = loop_scores(per_customer, industries, rules, as_of, sample, all_volumes)
        loop_kpi = loop_kpis([(r[0], r[3], r[4], r[5], r[6]) for r in rows])
        looped = min(looped, (time.perf_counter() - started) * (len(ids) / len(sample)))

    got = scores.set_index("customer_id")["score"]
    scores_equal = bool(np.allclose([loop_score[c] for c in sample], got.loc[sample].to_numpy(), atol=1e-6))
    vector_kpis = kpis[["order_on_time_rate", "delivery_on_time_rate", "complaint_rate"]].to_numpy()
    if len(sample) < len(ids):
        vector_kpis = vector_kpis[figures["customer_id"].isin(sample).to_numpy()]
    kpis_equal = bool(np.allclose(np.array(loop_kpi), vector_kpis, atol=1e-9, equal_nan=True))
    print(
        json.dumps(
            {
                "customers": args.customers,
                "months": args.months,
                "figure_rows": len(figures),
                "vectorised_seconds": round(vectorised, 3),
                "loop_seconds": round(looped, 3),
                "loop_extrapolated_from": None if len(sample) == len(ids) else len(sample),
                "timing": f"best of {args.repeat} runs each",
                "ratio": round(looped / vectorised, 1),
                "figures_equal": scores_equal and kpis_equal,
                "candidates_above_threshold": int((scores["score"] >= rules.threshold).sum()),
                "goal": {"vectorised_seconds_at_most": 5, "ratio_at_least": 20},
                "goal_met": vectorised <= 5 and looped / vectorised >= 20,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
