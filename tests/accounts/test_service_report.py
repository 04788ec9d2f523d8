"""The monthly service report to each key account's contact (seed 001 §四.1): the flow run on the session's Prefect
server computes last month's KPIs from a hand-built dataset, queues one linted zh-CN mail per key account, and the
mails arrive in a real SMTP server (aiosmtpd) once; a re-run sends nothing new."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from email.message import Message

import pytest
from sqlalchemy import Engine, select

from kefu.flows.service_report import ARTIFACT_KEY, service_report
from kefu.models.accounts import BusinessFigures, KeyAccountMember, TeamRole
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import CustomerTier
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.policy import current_policy
from kefu.notifications import deliver_due
from kefu.settings import get_settings
from tests.support.databases import migrated_sqlite, use_database
from tests.support.smtp import SMTPServer

TAG = f"R{os.getpid() % 10000:04d}"
OCTOBER = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = migrated_sqlite(tmp_path_factory.mktemp("reportdb") / "kefu.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_database(monkeypatch, url)
        yield url
    get_settings.cache_clear()


def add_customer(code: str, tier: CustomerTier, email: str | None, months: dict[dt.date, tuple[int, ...]]) -> None:
    """A customer and its figures: month -> (orders, orders on time, deliveries on time, complaints)."""
    with unit_of_work() as session:
        customer = Customer(name=f"{code}有限公司", code=code, tier=tier, email=email, contact_person=f"{code}联系人")
        session.add(customer)
        session.flush()
        for month, (orders, on_time, delivered, complaints) in months.items():
            session.add(
                BusinessFigures(
                    customer_id=customer.id, month=month, orders=orders, volume=Decimal(orders * 10),
                    orders_on_time=on_time, deliveries_on_time=delivered, complaints=complaints,
                )
            )  # fmt: skip


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no plain-text part")


def artifact_rows(flow_run_id: object) -> list[dict[str, str]]:
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    assert len(found) == 1
    data = found[0].data
    return list(json.loads(data) if isinstance(data, str) else data)


def test_each_key_account_gets_last_months_figures_once_with_the_commitment_for_a_missed_kpi(
    report_db: str, prefect_server: str, smtp_server: SMTPServer
) -> None:
    late, fine, general, no_mail = f"{TAG}A", f"{TAG}B", f"{TAG}C", f"{TAG}D"
    add_customer(late, CustomerTier.KEY, f"{late}@example.com",
                 {OCTOBER: (200, 196, 180, 4), dt.date(2026, 9, 1): (100, 50, 50, 0)})  # fmt: skip
    add_customer(fine, CustomerTier.KEY, f"{fine}@example.com", {OCTOBER: (400, 400, 392, 2)})
    add_customer(general, CustomerTier.GENERAL, f"{general}@example.com", {OCTOBER: (10, 1, 1, 5)})
    add_customer(no_mail, CustomerTier.KEY, None, {OCTOBER: (10, 10, 10, 0)})
    with unit_of_work() as session:  # the late account's project manager, named in its letter with how to reach him
        manager = Staff(name="陈项目", login=f"chen.{TAG.lower()}", phone="021-64001234", email="chen@kefu.example")
        session.add(manager)
        session.flush()
        account = session.scalars(select(Customer).where(Customer.code == late)).one()
        session.add(KeyAccountMember(customer_id=account.id, staff_id=manager.id, team_role=TeamRole.PROJECT_MANAGER))

    state = service_report(as_of="2026-10", return_state=True)
    assert state.is_completed() and sorted(state.result()) == [late, fine]
    rows = {r["客户编号"]: r for r in artifact_rows(state.state_details.flow_run_id)}
    assert set(rows) == {late, fine, no_mail}  # key accounts only, by code
    assert rows[no_mail]["结果"] == "无联系邮箱" and rows[fine]["未达标指标"] == "—"

    engine = default_engine()
    later = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)  # past any send window
    asyncio.run(deliver_due(engine, now=later, settings=smtp_server.settings))
    received = {str(m["To"]): text_of(m) for m in smtp_server.handler.received}
    assert set(received) == {f"{late}@example.com", f"{fine}@example.com"}

    commitment = current_policy().key_accounts.service_report.improvement_commitment
    missed = received[f"{late}@example.com"]
    assert "尊敬的" + f"{late}联系人" in missed and "2026年10月" in missed
    assert "订单处理及时率：98.0%" in missed and "准时交付率：90.0%" in missed and "投诉率：2.0%" in missed
    assert "本月未达到目标的指标：准时交付率、投诉率" in missed and commitment in missed
    assert "请随时与您的项目经理陈项目（电话021-64001234，邮箱chen@kefu.example）联系" in missed
    met = received[f"{fine}@example.com"]
    assert "订单处理及时率：100.0%" in met and "准时交付率：98.0%" in met and "投诉率：0.5%" in met
    assert "各项指标均达到服务目标" in met and commitment not in met
    assert "请随时与您的项目经理联系" in met  # no project manager on record: no name to give
    assert late not in met and "90.0%" not in met  # no other customer's data

    # a re-run of the month sends nothing new
    again = service_report(as_of="2026-10", return_state=True)
    assert again.result() == []
    assert {r["结果"] for r in artifact_rows(again.state_details.flow_run_id) if r["客户编号"] != no_mail} == {
        "此前已发送"
    }
    asyncio.run(deliver_due(engine, now=later, settings=smtp_server.settings))
    assert len(smtp_server.handler.received) == 2
    with unit_of_work() as session:
        queued = session.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "service_report")).all()
        assert len(queued) == 2 and all(not m.internal for m in queued)


def test_the_reports_and_the_renewal_are_computed_alike_on_both_databases(engine: Engine) -> None:
    """The repository side on SQLite and PostgreSQL: the month's figures picked by date, one report per key account,
    none twice; an agreement near its end reminded once."""
    from sqlalchemy.orm import Session

    from kefu.models.accounts import TeamRole
    from kefu.models.people import Staff
    from kefu.tasks import service_plans as plans
    from kefu.tasks.accounts import assign_member
    from kefu.tasks.service_reports import send_service_reports

    policy = current_policy()
    now = dt.datetime(2026, 11, 3, 1, 0, tzinfo=dt.UTC)
    with Session(engine) as session:
        customer = Customer(name="某某医药有限公司", code="PGA", tier=CustomerTier.KEY, email="pga@example.com")
        pm = Staff(name="项目经理", login="pga-pm", email="pga-pm@example.com")
        session.add_all([customer, pm])
        session.flush()
        assign_member(session, customer, TeamRole.PROJECT_MANAGER, pm)
        session.add_all(
            [
                BusinessFigures(customer_id=customer.id, month=OCTOBER, orders=50, volume=Decimal(500),
                                orders_on_time=45, deliveries_on_time=50, complaints=0),
                BusinessFigures(customer_id=customer.id, month=dt.date(2026, 9, 1), orders=50, volume=Decimal(500),
                                orders_on_time=50, deliveries_on_time=50, complaints=0),
            ]
        )  # fmt: skip
        first = send_service_reports(session, policy, OCTOBER, now)
        second = send_service_reports(session, policy, OCTOBER, now)
        assert [(o.code, o.outcome, o.below) for o in first] == [("PGA", "sent", "order_on_time_rate")]
        assert [o.outcome for o in second] == ["already_queued"]  # not delivered yet: still waiting in the outbox
        mail = session.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "service_report")).one()
        assert (
            "订单处理及时率：90.0%" in mail.body_text
            and "订单处理及时率" in mail.body_text.split("未达到目标的指标：")[1]
        )

        plan, _ = plans.open_plan(session, customer, now)
        plans.sign(
            session, plan.id, signed_on=dt.date(2026, 1, 1), starts_on=dt.date(2026, 1, 1),
            ends_on=dt.date(2026, 12, 31), document_ref="FW-PG", company_obligations="次日达",
            customer_obligations="按月结算", by=pm.id, now=now,
        )  # fmt: skip
        assert plans.remind_renewals(session, policy, dt.date(2026, 10, 1), now) == []  # 91 days before: not yet
        assert plans.remind_renewals(session, policy, dt.date(2026, 11, 3), now) == ["PGA:agreement_renewal"]
        assert plans.remind_renewals(session, policy, dt.date(2026, 11, 4), now) == []
        session.commit()


def test_the_runs_table_says_a_report_waits_in_the_outbox_for_the_send_window_and_when_it_leaves(
    engine: Engine,
) -> None:
    """Run after hours (as a person running the deployment by hand at 20:00 does), the report is queued for the next
    morning's send window: the run's table says so and when, never "sent" (a walk through found "已发送" in the table
    while the customer's mailbox stayed empty until the next morning)."""
    from sqlalchemy.orm import Session

    from kefu.flows.service_report import LEAVES_AT, report_table
    from kefu.tasks.service_reports import send_service_reports

    policy = current_policy()
    evening = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.UTC)  # Tuesday 20:00 in Shanghai
    with Session(engine) as session:
        customer = Customer(name="某某电子有限公司", code="WIN", tier=CustomerTier.KEY, email="win@example.com")
        session.add(customer)
        session.flush()
        session.add(
            BusinessFigures(customer_id=customer.id, month=OCTOBER, orders=50, volume=Decimal(500),
                            orders_on_time=50, deliveries_on_time=50, complaints=0)
        )  # fmt: skip
        first = report_table(send_service_reports(session, policy, OCTOBER, evening), policy.timezone)
        again = report_table(send_service_reports(session, policy, OCTOBER, evening), policy.timezone)
        session.commit()
    assert [(r["客户编号"], r["结果"], r[LEAVES_AT]) for r in first] == [
        ("WIN", "已排入发件箱", "2026-11-04 09:00 +08:00")
    ]
    assert [(r["结果"], r[LEAVES_AT]) for r in again] == [("此前已排入发件箱", "2026-11-04 09:00 +08:00")]
