"""Key-account identification and KPIs checked against a small hand-built dataset (seed 001 §二.1, §三.4), the
weights' validation in the policy file, and the monthly flow's table artifact on the test Prefect server."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.models import Customer, CustomerTier
from kefu.models.accounts import BusinessFigures, KeyAccountNomination, NominationSource
from kefu.models.policy import Policy, PolicyError, parse_policy
from kefu.settings import DEFAULT_POLICY_FILE
from kefu.tasks.account_scores import below_floor, monthly_kpis, score_customers

# Three customers, November 2026 scored (window Dec 2025 – Nov 2026; growth: Sep–Nov against Jun–Aug).
FIGURES = pd.DataFrame(
    [
        # customer, month, orders, volume, orders on time, deliveries on time, complaints
        (1, "2026-06-01", 100, 1000.0, 95, 90, 1),
        (1, "2026-10-01", 100, 1500.0, 100, 96, 0),
        (1, "2026-11-01", 200, 1500.0, 180, 200, 4),
        (2, "2026-07-01", 40, 400.0, 40, 40, 0),
        (2, "2026-09-01", 10, 100.0, 10, 10, 0),
        (3, "2025-11-01", 500, 9000.0, 500, 500, 0),  # outside the 12 months
        (3, "2026-11-01", 0, 0.0, 0, 0, 0),  # a month without orders has no rates
    ],
    columns=["customer_id", "month", "orders", "volume", "orders_on_time", "deliveries_on_time", "complaints"],
).assign(month=lambda f: pd.to_datetime(f["month"]))
CUSTOMERS = pd.DataFrame({"customer_id": [1, 2, 3, 4], "industry": ["电子", "零售", None, "汽车"]})


def test_every_customer_is_scored_on_volume_potential_and_influence_as_worked_out_by_hand(policy: Policy) -> None:
    rules = policy.key_accounts.identification  # weights 0.5 / 0.3 / 0.2, influence 电子 0.8, 零售 0.6, else 0.3
    scores = score_customers(FIGURES, CUSTOMERS, rules, dt.date(2026, 11, 30)).set_index("customer_id")
    # volumes over 12 months: 1 → 4000, 2 → 500, 3 → 0 (its 9000 are older), 4 → none; ranked among 1 and 2
    assert scores["volume"].to_dict() == {1: 4000.0, 2: 500.0, 3: 0.0, 4: 0.0}
    assert scores["business_volume"].to_dict() == {1: 1.0, 2: 0.5, 3: 0.0, 4: 0.0}
    # growth: 1 → 3000 against 1000 (+200%, capped at 1); 2 → 100 against 400 (a decline: 0)
    assert scores["cooperation_potential"].to_dict() == {1: 1.0, 2: 0.0, 3: 0.0, 4: 0.0}
    assert scores["industry_influence"].to_dict() == {1: 0.8, 2: 0.6, 3: 0.3, 4: 0.9}
    # 100 × (0.5·1 + 0.3·1 + 0.2·0.8) = 96; 100 × (0.5·0.5 + 0.2·0.6) = 37; 100 × 0.2·0.3 = 6; 100 × 0.2·0.9 = 18
    assert scores["score"].to_dict() == {1: 96.0, 2: 37.0, 3: 6.0, 4: 18.0}


def test_monthly_kpis_are_on_time_rates_and_the_complaint_rate_per_order(policy: Policy) -> None:
    kpis = monthly_kpis(FIGURES)
    november = kpis[(kpis["customer_id"] == 1) & (kpis["month"] == "2026-11-01")].iloc[0]
    assert (november["order_on_time_rate"], november["delivery_on_time_rate"], november["complaint_rate"]) == (
        0.9,
        1.0,
        0.02,
    )
    empty = kpis[(kpis["customer_id"] == 3) & (kpis["month"] == "2026-11-01")].iloc[0]
    assert math.isnan(empty["order_on_time_rate"]) and math.isnan(empty["complaint_rate"])
    misses = below_floor(kpis, policy.key_accounts.kpi)  # floors 95% / 95%, complaint ceiling 1%
    assert misses[november.name] == "order_on_time_rate,complaint_rate"
    assert (
        misses[kpis[(kpis["customer_id"] == 1) & (kpis["month"] == "2026-06-01")].index[0]] == "delivery_on_time_rate"
    )


def test_identification_weights_must_add_up_to_one_and_every_setting_names_its_source() -> None:
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    data["key_accounts"]["identification"]["criteria"]["business_volume"]["weight"] = 0.9
    with pytest.raises(PolicyError, match="criteria weights must add up to 1"):
        parse_policy(yaml.safe_dump(data, allow_unicode=True))
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    data["key_accounts"]["kpi"]["source"] = "我们定的"
    with pytest.raises(PolicyError, match=r"key_accounts\.kpi\.source"):
        parse_policy(yaml.safe_dump(data, allow_unicode=True))


def test_the_monthly_identification_nominates_each_new_candidate_once_and_lists_it_with_its_explanation(
    prefect_server: str, engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name == "postgresql":
        pytest.skip("the flow reads through the same repository functions: the SQLite run covers it")
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from kefu.flows.key_account_identification import ARTIFACT_KEY, key_account_identification
    from kefu.settings import get_settings

    with Session(engine) as session:
        codes = {1: "HX01", 2: "LS02", 3: "OLD3", 4: "KEY4"}
        for customer_id, code in codes.items():
            tier = CustomerTier.KEY if code == "KEY4" else CustomerTier.GENERAL
            industry = CUSTOMERS.set_index("customer_id").at[customer_id, "industry"]
            session.add(Customer(id=customer_id, code=code, name=f"客户{code}", tier=tier, industry=industry))
        session.flush()
        for row in FIGURES.itertuples():
            session.add(
                BusinessFigures(
                    customer_id=row.customer_id,
                    month=row.month.date(),
                    orders=row.orders,
                    volume=row.volume,
                    orders_on_time=row.orders_on_time,
                    deliveries_on_time=row.deliveries_on_time,
                    complaints=row.complaints,
                )
            )
        session.add(
            BusinessFigures(
                customer_id=4,
                month=dt.date(2026, 11, 1),
                orders=1,
                volume=99999,
                orders_on_time=1,
                deliveries_on_time=1,
                complaints=0,
            )
        )  # a key account already
        session.commit()  # fmt: skip
    monkeypatch.setenv("KEFU_DATABASE_URL", database_url)
    get_settings.cache_clear()
    started = dt.datetime.now(dt.UTC)  # the session's server holds other tests' identification runs too
    try:
        assert key_account_identification("2026-11") == ["HX01"]
        assert key_account_identification("2026-11") == []  # HX01's nomination is open: not new again
    finally:
        get_settings.cache_clear()
    with Session(engine) as session:
        [nomination] = session.scalars(select(KeyAccountNomination)).all()
    assert (nomination.customer_id, nomination.source, nomination.month) == (1, NominationSource.SCORING,
                                                                           dt.date(2026, 11, 1))  # fmt: skip
    assert "合计" in (nomination.explanation or "")

    async def artifacts() -> list[object]:
        async with get_client() as client:
            return list(
                await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])))
            )

    import asyncio

    found = [a for a in asyncio.run(artifacts()) if a.created >= started]  # type: ignore[attr-defined]
    first = min(found, key=lambda a: a.created)  # type: ignore[attr-defined]
    table = first.data  # type: ignore[attr-defined]
    rows = yaml.safe_load(table) if isinstance(table, str) else table
    assert [r["客户编号"] for r in rows] == ["HX01"]
    # the key account's volume ranks above HX01 now: 2 of 3 → 100 × (0.5·⅔ + 0.3·1 + 0.2·0.8) = 79.33
    assert rows[0]["得分"] == 79.33 and "业务量 0.67×0.5=33.3分" in rows[0]["评分说明"]
    assert "客户HX01" not in str(rows)  # the code, never the name


def test_the_identification_runs_monthly_on_the_policys_schedule_and_time_zone(policy: Policy) -> None:
    from kefu.deployments import all_deployments

    [served] = [d for d in all_deployments() if d.name == "key-account-identification"]
    [schedule] = served.deployment.schedules
    assert schedule.schedule.cron == policy.key_accounts.identification_schedule == "0 8 2 * *"
    assert schedule.schedule.timezone == policy.timezone and served.resumable


def test_a_nomination_by_hand_records_who_and_why_and_is_refused_for_a_key_account_or_a_second_time(
    db: Session,
) -> None:
    from kefu.models import Role, Staff
    from kefu.tasks.accounts import AccountError, nominate

    market = Staff(name="市场", login="shichang")
    market.grant(Role.MARKET)
    general, key = Customer(code="G1", name="甲"), Customer(code="K1", name="乙", tier=CustomerTier.KEY)
    db.add_all([market, general, key])
    db.flush()
    row = nominate(db, general, source=NominationSource.MARKET, by=market, reason="行业龙头")
    assert (row.nominated_by_id, row.reason, row.status, row.at is not None) == (market.id, "行业龙头", "open", True)
    with pytest.raises(AccountError, match="already nominated"):
        nominate(db, general, source=NominationSource.MARKET, by=market, reason="再次")
    with pytest.raises(AccountError, match="already a key account"):
        nominate(db, key, source=NominationSource.MARKET, by=market, reason="x")
