"""What the senior manager reads above the approval form in the Prefect UI: the form asks for the team's staff
numbers, so the summary offers the people who may fill each place with their numbers (a walk through found a senior
manager in the UI with no way to learn them)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kefu.flows.key_account_onboarding import RESEARCH, SENIOR_APPROVAL, render_summary
from kefu.models.accounts import KeyAccountNomination, NominationSource
from kefu.models.enums import Role
from kefu.models.people import Customer, Staff


def person(db: Session, login: str, name: str, role: Role, *, active: bool = True) -> Staff:
    staff = Staff(name=name, login=login, active=active)
    staff.grant(role)
    db.add(staff)
    db.flush()
    return staff


def test_the_senior_approval_summary_lists_who_may_fill_each_place_of_the_team_with_their_staff_numbers(
    db: Session,
) -> None:
    pm = person(db, "chen.xiangmu", "陈项目", Role.PROJECT_MANAGER)
    agent = person(db, "li.kefu", "李客服", Role.AGENT)
    person(db, "old.kefu", "离职客服", Role.AGENT, active=False)
    after = person(db, "wu.shouhou", "吴售后", Role.AFTER_SALES)
    person(db, "qian.caiwu", "钱财务", Role.FINANCE)
    customer = Customer(name="华星电子", code="HX01", industry="电子")
    db.add(customer)
    db.flush()
    nomination = KeyAccountNomination(customer_id=customer.id, source=NominationSource.MARKET, reason="行业龙头")
    db.add(nomination)
    db.commit()

    summary = render_summary(db, nomination.id, SENIOR_APPROVAL)

    assert f"| 项目经理 | 陈项目（chen.xiangmu，编号 {pm.id}） |" in summary
    assert f"| 客服专员 | 李客服（li.kefu，编号 {agent.id}） |" in summary  # the deactivated agent is not offered
    assert "离职客服" not in summary and "钱财务" not in summary
    assert "| 物流调度员 | —（员工目录中暂无此角色的在职人员） |" in summary
    assert f"| 售后服务人员 | 吴售后（wu.shouhou，编号 {after.id}） |" in summary
    # the other steps' summaries do not need it
    assert "服务团队人选" not in render_summary(db, nomination.id, RESEARCH)
