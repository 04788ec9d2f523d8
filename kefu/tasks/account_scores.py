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

import numpy as np
import pandas as pd

from kefu.models.policy import Criterion, IdentificationPolicy, KpiPolicy

SCORE_COLUMNS = [
    "customer_id", "volume", "volume_recent", "volume_before", "business_volume", "cooperation_potential",
    "industry_influence", "score",
]  # fmt: skip
KPI_COLUMNS = ["customer_id", "month", "order_on_time_rate", "delivery_on_time_rate", "complaint_rate"]


def month_start(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day.year, day.month, 1)


def score_customers(
    figures: pd.DataFrame, customers: pd.DataFrame, rules: IdentificationPolicy, as_of: dt.date
) -> pd.DataFrame:
    """Every customer of ``customers`` scored on the figures of the ``rules.months`` months up to and including the
    month of ``as_of``; one row per customer (``SCORE_COLUMNS``), highest score first."""
    last = month_start(as_of)
    first = last - pd.DateOffset(months=rules.months - 1)
    recent_from = last - pd.DateOffset(months=rules.growth_months - 1)
    before_from = recent_from - pd.DateOffset(months=rules.growth_months)
    month = figures["month"]
    volume = figures["volume"].astype("float64")
    window = pd.DataFrame(
        {
            "customer_id": figures["customer_id"],
            "volume": volume.where((month >= first) & (month <= last), 0.0),
            "volume_recent": volume.where((month >= recent_from) & (month <= last), 0.0),
            "volume_before": volume.where((month >= before_from) & (month < recent_from), 0.0),
        }
    )
    sums = window.groupby("customer_id", sort=False).sum()
    frame = customers[["customer_id", "industry"]].join(sums, on="customer_id")
    for column in ("volume", "volume_recent", "volume_before"):
        frame[column] = frame[column].fillna(0.0)
    has_volume = frame["volume"] > 0
    ranked = frame.loc[has_volume, "volume"].rank(method="max", pct=True)
    frame["business_volume"] = ranked.reindex(frame.index, fill_value=0.0)
    recent, before = frame["volume_recent"], frame["volume_before"]
    growth = (recent - before) / before.where(before > 0)
    frame["cooperation_potential"] = np.where(before > 0, growth.clip(0.0, 1.0), np.where(recent > 0, 1.0, 0.0))
    influence = frame["industry"].map(rules.industry_influence)
    frame["industry_influence"] = influence.fillna(rules.industry_influence_default).astype("float64")
    weights: dict[str, float] = {name: criterion.weight for name, criterion in rules.criteria.items()}
    frame["score"] = 100.0 * (
        weights["business_volume"] * frame["business_volume"]
        + weights["cooperation_potential"] * frame["cooperation_potential"]
        + weights["industry_influence"] * frame["industry_influence"]
    )
    frame["score"] = frame["score"].round(2)
    return frame[SCORE_COLUMNS].sort_values(["score", "customer_id"], ascending=[False, True], ignore_index=True)


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
    """The three KPIs of every row of ``figures`` (``KPI_COLUMNS``), sorted by customer and month."""
    orders = figures["orders"].astype("float64").where(figures["orders"] > 0)
    frame = pd.DataFrame(
        {
            "customer_id": figures["customer_id"],
            "month": figures["month"],
            "order_on_time_rate": figures["orders_on_time"] / orders,
            "delivery_on_time_rate": figures["deliveries_on_time"] / orders,
            "complaint_rate": figures["complaints"] / orders,
        }
    )
    return frame.sort_values(["customer_id", "month"], ignore_index=True)


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
