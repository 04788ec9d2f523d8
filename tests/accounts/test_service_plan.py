"""A key account's service plan through real suspend/resume (a Kefu worker serving the onboarding, plan and part
deployments, the session's Prefect server, a real database): admitted by the onboarding → the project manager's
needs and draft → three departments' parts in parallel (one run each) → the senior manager sends it back, then
approves → the agreement, refused with bad dates, then signed. The renewal reminder and a missed part's escalation
come from the deadline duty, once each."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kefu.cli import UsageError
from kefu.cli.step import submit
from kefu.desk.proxy import Refusal
from kefu.desk.steps import answer_as, my_waiting_steps
from kefu.flows.case_deadlines import service_plan_deadlines
from kefu.flows.service_plan import DRAFT, PLAN_FLOW, render_summary
from kefu.models.accounts import TeamRole
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import CustomerTier, Role
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.service_plans import ServiceAgreement, ServicePlan, ServicePlanEvent, ServicePlanPart
from kefu.settings import get_settings
from kefu.tasks import service_plans as plans
from kefu.tasks.accounts import assign_member
from tests.accounts.test_onboarding import People, kefu, nominate, review_all, wait_final
from tests.accounts.test_onboarding import do as do_onboarding
from tests.support.databases import migrated_sqlite, use_database
from tests.support.prefect import WorkerProcess

SERVED = '["key-account-onboarding", "onboarding-review", "key-account-service-plan", "service-plan-part"]'
PARTS = ("market", "operations", "technology")
_codes = itertools.count(1)


class PlanWorker(WorkerProcess):
    def __init__(self, db_url: str, log_path: Path) -> None:
        super().__init__(db_url, log_path)
        self.env = {**self.env, "KEFU_SERVE_ONLY": SERVED}

    def wait_ready(self, process: object, timeout: float = 60.0) -> None:  # type: ignore[override]
        import time

        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                try:
                    client.read_deployment_by_name(f"{PLAN_FLOW}/{PLAN_FLOW}")
                    return
                except Exception:
                    time.sleep(0.5)  # the worker registers at start-up: its deployment is the only signal
        raise RuntimeError(f"the worker never registered its deployments; see {self.log_path}")


@pytest.fixture(scope="module")
def plan_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = migrated_sqlite(tmp_path_factory.mktemp("plandb") / "kefu.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_database(monkeypatch, url)
        yield url
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def worker(prefect_server: str, plan_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = PlanWorker(plan_db, tmp_path_factory.mktemp("plan-worker") / "worker.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def new_customer(key_account: bool = False) -> str:
    code = f"SVP{os.getpid() % 10000:04d}{next(_codes):03d}"
    with unit_of_work() as session:
        session.add(
            Customer(
                name=f"某某电子有限公司{code}", code=code, industry="电子",
                tier=CustomerTier.KEY if key_account else CustomerTier.GENERAL,
            )
        )  # fmt: skip
    return code


def wait_plan_step(code: str, step: str, timeout: float = 90) -> str:
    """Until the customer's plan waits on ``step`` (a new wait); its run id."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            rows = [r for r in plans.waiting_steps(session, code) if r["step"] == step]
        if rows:
            return str(rows[-1]["flow_run_id"])
        time.sleep(0.3)  # the worker is another process: polling the DB is the only signal
    raise AssertionError(f"{code} never waited on {step}")


def plan_row(code: str) -> ServicePlan:
    with unit_of_work() as session:
        row = plans.plan_for_code(session, code)
        assert row is not None
        session.expunge(row)
        return row


def refusals(code: str, step: str) -> list[str]:
    with unit_of_work() as session:
        plan = plans.plan_for_code(session, code)
        assert plan is not None
        return [
            str(e.data["reason"])
            for e in plans.events(session, plan.id)
            if e.action == "step_refused" and e.data.get("step") == step
        ]


def wait_refused(code: str, step: str, timeout: float = 60) -> list[str]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = refusals(code, step)
        if found:
            return found
        time.sleep(0.3)  # the worker is another process: polling the DB is the only signal
    raise AssertionError(f"{code}: {step} never refused")


pytestmark = pytest.mark.usefixtures("worker")


def test_an_admitted_key_account_gets_its_plan_worked_out_in_parallel_sent_back_approved_and_its_agreement_signed(
    plan_db: str, prefect_server: str
) -> None:
    people, code = People("svp"), new_customer()
    # the onboarding admits the customer: its admitted branch opens the service plan
    nominate(plan_db, prefect_server, code, people)
    do_onboarding(code, "research", actor_staff_id=people["market"], findings="业务量大")
    review_all(code, people)
    do_onboarding(code, "senior_approval", actor_staff_id=people["senior"], admit=True, reason="同意", **people.team())
    run_id = wait_plan_step(code, "plan_draft")

    # the operators' entrance lists the draft to the account's project manager only, and answers it as them
    engine = default_engine()
    now = plans.system_clock()
    assert (code, "plan_draft") in [(v.case_no, v.step) for v in my_waiting_steps(engine, people["pm"], now)]
    assert code not in [v.case_no for v in my_waiting_steps(engine, people["cs"], now)]
    with pytest.raises(Refusal):
        answer_as(engine, people["cs"], code, run_id, {"needs": "x", "draft": "y"})
    assert answer_as(engine, people["pm"], code, run_id, {"needs": "x", "draft": "y"})["actor_staff_id"] == people["pm"]

    # only the account's project manager records the needs and the draft
    with pytest.raises(UsageError, match="项目经理"):
        submit(code, "plan_draft", {"actor_staff_id": people["cs"], "needs": "x", "draft": "y"})
    submit(code, "plan_draft", {"actor_staff_id": people["pm"], "needs": "华东区次日达", "draft": "专线运输＋驻场客服"})

    # the three departments, each in its own run, in parallel
    for department in PARTS:
        wait_plan_step(code, f"plan_part_{department}")
    listing = kefu(plan_db, prefect_server, "step", "list", "--case", code)
    assert all(f"plan_part_{d}" in listing.stdout for d in PARTS), listing.stderr
    with pytest.raises(UsageError, match="无权处理此步骤"):  # a department answers its own part only
        submit(code, "plan_part_market", {"actor_staff_id": people["technology"], "part": "x"})
    for department in PARTS:
        submit(code, f"plan_part_{department}", {"actor_staff_id": people[department], "part": f"{department}意见"})

    # the senior manager sends it back; the project manager revises it; then it is approved
    assert wait_plan_step(code, "plan_approval") == run_id  # the same plan run, resumed by the last part
    submit(code, "plan_approval", {"actor_staff_id": people["senior"], "approve": False, "reason": "请补充应急预案"})
    wait_plan_step(code, "plan_draft")
    assert plan_row(code).sent_back == 1
    with unit_of_work() as session:  # the project manager sees why, above the form
        assert "高层退回修改**：请补充应急预案" in render_summary(session, plan_row(code).id, DRAFT)
    submit(code, "plan_draft", {"actor_staff_id": people["pm"], "needs": "华东区次日达",
                                "draft": "专线运输＋驻场客服＋应急预案"})  # fmt: skip
    wait_plan_step(code, "plan_approval")
    submit(code, "plan_approval", {"actor_staff_id": people["senior"], "approve": True, "reason": "同意"})

    # the agreement: an end date before its start is refused and the step waits again; then it is signed
    wait_plan_step(code, "agreement")
    today = shanghai_today()
    agreement = {
        "actor_staff_id": people["pm"], "signed_on": today.isoformat(), "starts_on": today.isoformat(),
        "ends_on": (today - dt.timedelta(days=1)).isoformat(), "document_ref": "FW-2026-001",
        "company_obligations": "次日达、专属客服", "customer_obligations": "按月结算、提前一天下单",
    }  # fmt: skip
    submit(code, "agreement", agreement)
    reasons = wait_refused(code, "agreement")
    assert any("到期日须晚于生效日" in reason for reason in reasons)
    assert wait_plan_step(code, "agreement") == run_id  # asked again, in the same run
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(ServiceAgreement)
                              .join(Customer).where(Customer.code == code)) == 0  # fmt: skip
    ends = today.replace(year=today.year + 1)
    submit(code, "agreement", {**agreement, "ends_on": ends.isoformat()})

    state, run = wait_final(run_id)
    assert state == "COMPLETED" and run.name == code and PLAN_FLOW in run.tags
    plan = plan_row(code)
    assert (plan.status, plan.draft) == (plans.SIGNED, "专线运输＋驻场客服＋应急预案")
    with unit_of_work() as session:
        parts = session.scalars(select(ServicePlanPart).where(ServicePlanPart.plan_id == plan.id)).all()
        assert {p.department: p.part for p in parts} == {d: f"{d}意见" for d in PARTS}
        signed = session.scalars(select(ServiceAgreement).where(ServiceAgreement.plan_id == plan.id)).one()
        assert (signed.ends_on, signed.document_ref) == (ends, "FW-2026-001")
        keys = [(e.action, e.key) for e in session.scalars(select(ServicePlanEvent)
                                                             .where(ServicePlanEvent.plan_id == plan.id))]  # fmt: skip
        assert len(keys) == len(set(keys))

    shown = kefu(plan_db, prefect_server, "account", "show", code)
    assert shown.returncode == 0, shown.stderr
    assert f"agreement: FW-2026-001 signed {today}, term {today} to {ends}" in shown.stdout
    assert "次日达、专属客服" in shown.stdout


def shanghai_today() -> dt.date:
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def key_account_with_manager(tag: str) -> tuple[str, Staff]:
    code = new_customer(key_account=True)
    with unit_of_work() as session:
        pm = Staff(name=f"项目经理{tag}", login=f"{tag}-pm", email=f"{tag}-pm@example.com")
        pm.grant(Role.AGENT)
        session.add(pm)
        customer = session.scalars(select(Customer).where(Customer.code == code)).one()
        session.flush()
        assign_member(session, customer, TeamRole.PROJECT_MANAGER, pm)
        session.expunge(pm)
    return code, pm


def signed_agreement(code: str, ends_on: dt.date, by: Staff) -> int:
    now = plans.system_clock()
    with unit_of_work() as session:
        customer = session.scalars(select(Customer).where(Customer.code == code)).one()
        plan, _ = plans.open_plan(session, customer, now)
        plans.sign(
            session, plan.id, signed_on=ends_on.replace(year=ends_on.year - 1), starts_on=ends_on.replace(
                year=ends_on.year - 1), ends_on=ends_on, document_ref=f"FW-{code}", company_obligations="次日达",
            customer_obligations="按月结算", by=by.id, now=now,
        )  # fmt: skip
        return plan.id


def renewal_mails(pm: Staff) -> list[OutboxMessage]:
    with unit_of_work() as session:
        rows = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.recipient == pm.email, OutboxMessage.message_type == "service_agreement_renewal"
            )
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def test_the_renewal_comes_up_once_before_the_agreements_end_date_and_not_before_the_lead_time() -> None:
    soon, soon_pm = key_account_with_manager("ren1")
    later, later_pm = key_account_with_manager("ren2")
    today = shanghai_today()
    signed_agreement(soon, today + dt.timedelta(days=30), soon_pm)  # within the policy's 60 days
    signed_agreement(later, today + dt.timedelta(days=200), later_pm)

    now = plans.system_clock()
    fired = service_plan_deadlines(now)
    assert f"{soon}:agreement_renewal" in fired and f"{later}:agreement_renewal" not in fired
    assert service_plan_deadlines(now + dt.timedelta(minutes=1)) == []  # the next sweep: nothing again
    mails = renewal_mails(soon_pm)
    assert len(mails) == 1 and soon in mails[0].subject and f"FW-{soon}" in mails[0].body_text
    assert renewal_mails(later_pm) == []


def test_a_part_not_in_by_its_deadline_escalates_to_the_departments_supervisor_once() -> None:
    code, _ = key_account_with_manager("late")
    with unit_of_work() as session:
        boss = Staff(name="运营主管", login="late-boss", email="late-boss@example.com")
        boss.grant(Role.SUPERVISOR)
        ops = Staff(name="运营专员", login="late-ops", email="late-ops@example.com", supervisor=boss)
        ops.grant(Role.OPERATIONS)
        session.add_all([boss, ops])
        customer = session.scalars(select(Customer).where(Customer.code == code)).one()
        plan, _ = plans.open_plan(session, customer, plans.system_clock())
        plan.flow_run_id = "00000000-0000-0000-0000-000000000000"  # a run of its own (the duty leaves it be)
        start = plans.system_clock() - dt.timedelta(days=30)
        from kefu.models.policy import current_policy
        from kefu.worktime import calendar_for

        policy = current_policy()
        plans.open_parts(session, plan.id, policy, calendar_for(policy), start)
        plans.record_part(session, plan.id, "market", part="ok", author_id=ops.id, now=start)
        plans.record_part(session, plan.id, "technology", part="ok", author_id=ops.id, now=start)
    now = plans.system_clock()
    fired = [f for f in service_plan_deadlines(now) if f.startswith(code)]
    assert f"{code}:plan_part_operations:escalated:1" in fired
    assert not [f for f in service_plan_deadlines(now) if f.startswith(code)]
    with unit_of_work() as session:
        to_boss = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.recipient == "late-boss@example.com",
                OutboxMessage.message_type == "service_plan_part_overdue",
            )
        ).all()
        assert len(to_boss) == 1 and code in to_boss[0].subject


def test_kefu_account_plan_opens_a_key_accounts_plan_by_hand_and_refuses_others(
    plan_db: str, prefect_server: str
) -> None:
    code, pm = key_account_with_manager("hand")
    general = new_customer()
    with unit_of_work() as session:
        senior = Staff(name="高总", login="hand-senior", email="hand-senior@example.com")
        senior.grant(Role.SENIOR_MANAGER)
        session.add(senior)
    stranger = kefu(plan_db, prefect_server, "account", "plan", general, "--as", str(pm.login))
    assert stranger.returncode == 2 and "project manager or a senior manager" in stranger.stderr
    not_key = kefu(plan_db, prefect_server, "account", "plan", general, "--as", "hand-senior")
    assert not_key.returncode == 2 and "不是重点客户" in not_key.stderr
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(ServicePlan)
                              .join(Customer).where(Customer.code == general)) == 0  # fmt: skip

    opened = kefu(plan_db, prefect_server, "account", "plan", code, "--as", str(pm.login))
    assert opened.returncode == 0, opened.stderr
    assert f"kefu account plan: {code} plan" in opened.stdout and "run" in opened.stdout
    wait_plan_step(code, "plan_draft")
    again = kefu(plan_db, prefect_server, "account", "plan", code, "--as", str(pm.login))
    assert again.returncode == 0 and opened.stdout.split(",")[0] == again.stdout.split(",")[0]  # the same plan
    shown = kefu(plan_db, prefect_server, "account", "show", code)
    assert "service plan: open (制定中)" in shown.stdout


def test_a_worker_killed_during_the_parallel_parts_loses_no_part_and_counts_none_twice(
    worker: WorkerProcess, plan_db: str, prefect_server: str
) -> None:
    people, code = People("pkill"), new_customer(key_account=True)
    with unit_of_work() as session:
        customer = session.scalars(select(Customer).where(Customer.code == code)).one()
        pm = session.get(Staff, people["pm"])
        assert pm is not None
        assign_member(session, customer, TeamRole.PROJECT_MANAGER, pm)
    opened = kefu(plan_db, prefect_server, "account", "plan", code, "--as", "pkill-pm")
    assert opened.returncode == 0, opened.stderr
    wait_plan_step(code, "plan_draft")
    submit(code, "plan_draft", {"actor_staff_id": people["pm"], "needs": "冷链", "draft": "冷链专线"})
    for department in PARTS:
        wait_plan_step(code, f"plan_part_{department}")
    submit(code, "plan_part_market", {"actor_staff_id": people["market"], "part": "market意见"})
    submit(code, "plan_part_operations", {"actor_staff_id": people["operations"], "part": "operations意见"})
    worker.kill_9()  # the two parts are with Prefect; whether the worker took them up or not, it is gone
    worker.start()
    submit(code, "plan_part_technology", {"actor_staff_id": people["technology"], "part": "technology意见"})
    run_id = wait_plan_step(code, "plan_approval", timeout=150)

    plan = plan_row(code)
    assert plan.flow_run_id == run_id
    with unit_of_work() as session:
        parts = session.scalars(select(ServicePlanPart).where(ServicePlanPart.plan_id == plan.id)).all()
        assert {p.department: p.part for p in parts} == {d: f"{d}意见" for d in PARTS}
        keys = [(e.action, e.key) for e in session.scalars(select(ServicePlanEvent)
                                                             .where(ServicePlanEvent.plan_id == plan.id))]  # fmt: skip
        assert len(keys) == len(set(keys))
