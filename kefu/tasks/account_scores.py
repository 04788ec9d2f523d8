"""Key-account figures, vectorised with pandas: the identification score of every customer (seed 001 §二.1) and the
monthly KPIs of every key account (seed 001 §三.4). Pure functions of data frames and the policy, so the monthly
flow, ``kefu account show`` and the benchmark compute the same numbers.

Inputs: ``figures`` — one row per customer and month (``customer_id, month, orders, volume, orders_on_time,
deliveries_on_time, complaints``; ``month`` a timestamp of the month's first day); ``customers`` — ``customer_id,
industry, tier``.

**Score** (0–100) = 100 × Σ weight × criterion, each criterion 0–1 (weights, windows and the table of industries
in the policy's ``key_accounts.identification``):

- business volume: the share of scored customers whose volume over the last ``months`` months is at most this
  customer's (the biggest customer scores 1; a customer without figures 0);
- cooperation potential: volume growth of the last ``growth_months`` months over the ``growth_months`` before,
  capped at 100% (no growth or a decline 0; a start from nothing with volume now 1);
- industry influence: the registry industry's value in the table, else the default.

**KPIs** per customer and month: order-processing on-time rate = orders processed on time / orders; on-time
delivery rate = deliveries on time / orders; complaint rate = complaints / orders. A month without orders has no
rates (NaN).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from kefu.models.policy import Criterion, IdentificationPolicy, KpiPolicy

SCORE_COLUMNS = [
    "customer_id", "volume", "volume_recent", "volume_before", "business_volume", "cooperation_potential",
    "industry_influence", "score",
]  # fmt: skip
KPI_COLUMNS = ["customer_id", "month", "order_on_time_rate", "delivery_on_time_rate", "complaint_rate"]


def score_customers(
    figures: pd.DataFrame, customers: pd.DataFrame, rules: IdentificationPolicy, as_of: dt.date
) -> pd.DataFrame:
    """Every customer of ``customers`` scored on the figures of the ``rules.months`` months up to and including the
    month of ``as_of``; one row per customer (``SCORE_COLUMNS``), in the order of ``customers``."""
    # months numbered year × 12 + month - 1: the windows' bounds
    last = as_of.year * 12 + as_of.month - 1
    first, recent_from = last - rules.months + 1, last - rules.growth_months + 1
    before_from = recent_from - rules.growth_months
    month = figures["month"].to_numpy()  # datetime64: compared with the window's bounds, never converted
    volume = figures["volume"].to_numpy(dtype="float64")
    # each figure row's customer as a position in ``customers`` (rows of unknown customers count nowhere)
    ids = customers["customer_id"].to_numpy()
    given = figures["customer_id"].to_numpy()
    if len(ids) and ids[-1] - ids[0] == len(ids) - 1 and bool((np.diff(ids) == 1).all()):
        where = given - ids[0]  # consecutive ids (the database's): a customer's position is its id's offset
        where[(where < 0) | (where >= len(ids))] = -1
    else:
        where = pd.Index(ids).get_indexer(given)
    if (where < 0).any():
        known = where >= 0
        where, month, volume = where[known], month[known], volume[known]

    def start(number: int) -> Any:  # a datetime64 in the figures' unit
        return np.datetime64(f"{number // 12:04d}-{number % 12 + 1:02d}-01").astype(month.dtype)

    def summed(since: int, until: int) -> np.ndarray:
        """Each customer's volume of the months ``since`` ≤ month ≤ ``until``."""
        inside = (month >= start(since)) & (month < start(until + 1))
        return np.bincount(where, weights=volume * inside, minlength=len(ids))

    total = summed(first, last)
    recent = summed(recent_from, last)
    before = summed(before_from, recent_from - 1)
    has_volume = total > 0
    business = np.zeros(len(ids))
    # the share of customers with volume whose volume is at most this one's (rank "max", as a fraction)
    volumes = total[has_volume]
    order = np.argsort(volumes, kind="stable")
    ordered = volumes[order]
    ranks = np.empty(len(volumes))
    ranks[order] = np.searchsorted(ordered, ordered, side="right") / max(len(ordered), 1)  # queries in order: fast
    business[has_volume] = ranks
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.clip((recent - before) / before, 0.0, 1.0)
    potential = np.where(before > 0, growth, np.where(recent > 0, 1.0, 0.0))
    industry = pd.Categorical(customers["industry"])
    table = [rules.industry_influence.get(str(c), rules.industry_influence_default) for c in industry.categories]
    influence = np.append(np.array(table, dtype="float64"), rules.industry_influence_default)[industry.codes]
    weights: dict[str, float] = {name: criterion.weight for name, criterion in rules.criteria.items()}
    score = 100.0 * (
        weights["business_volume"] * business
        + weights["cooperation_potential"] * potential
        + weights["industry_influence"] * influence
    )
    return pd.DataFrame(  # a frame per customer is small: 100,000 rows
        {
            "customer_id": ids,
            "volume": total,
            "volume_recent": recent,
            "volume_before": before,
            "business_volume": business,
            "cooperation_potential": potential,
            "industry_influence": influence,
            "score": np.round(score, 2),
        }
    )


def explain(row: pd.Series, industry: str | None, rules: IdentificationPolicy) -> str:
    """The score of one customer as staff read it: each criterion's measure, value, weight and points (zh-CN)."""
    crit: dict[str, Criterion] = {str(k): v for k, v in rules.criteria.items()}
    parts = []
    for key, measure in (
        (
            "business_volume",
            f"近{rules.months}个月业务量 {row['volume']:,.0f}，不低于{row['business_volume']:.0%}的客户",
        ),
        (
            "cooperation_potential",
            f"近{rules.growth_months}个月业务量 {row['volume_recent']:,.0f}，此前{rules.growth_months}个月 "
            f"{row['volume_before']:,.0f}",
        ),
        ("industry_influence", f"行业：{industry or '未填写'}"),
    ):
        value = float(row[key])
        parts.append(
            f"{crit[key].name} {value:.2f}×{crit[key].weight:g}={100 * value * crit[key].weight:.1f}分（{measure}）"
        )
    verdict = "达到" if row["score"] >= rules.threshold else "未达到"
    return f"{'；'.join(parts)}；合计 {row['score']:.1f} 分，{verdict}门槛 {rules.threshold:g} 分"


def monthly_kpis(figures: pd.DataFrame) -> pd.DataFrame:
    """The three KPIs of every row of ``figures`` (``KPI_COLUMNS``), in the order of ``figures``."""
    orders = figures["orders"].to_numpy(dtype="float64")
    orders[orders <= 0] = np.nan
    rates = np.empty((len(figures), 3))  # one block: no copying the columns together afterwards
    for column, counted in enumerate(("orders_on_time", "deliveries_on_time", "complaints")):
        np.divide(figures[counted].to_numpy(dtype="float64"), orders, out=rates[:, column])
    frame = pd.DataFrame(rates, columns=KPI_COLUMNS[2:], index=figures.index, copy=False)
    frame.insert(0, "customer_id", figures["customer_id"].to_numpy())
    frame.insert(1, "month", figures["month"].to_numpy())
    return frame


def below_floor(kpis: pd.DataFrame, rules: KpiPolicy) -> pd.Series:
    """Per KPI row: the KPIs it misses (comma-separated ids), empty when it meets them all."""
    misses = pd.DataFrame(
        {
            "order_on_time_rate": kpis["order_on_time_rate"] < rules.order_on_time_floor,
            "delivery_on_time_rate": kpis["delivery_on_time_rate"] < rules.delivery_on_time_floor,
            "complaint_rate": kpis["complaint_rate"] > rules.complaint_rate_ceiling,
        }
    )
    return misses.apply(lambda r: ",".join(c for c, missed in r.items() if missed), axis=1)
