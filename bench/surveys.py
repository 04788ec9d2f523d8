"""Inviting a survey campaign's customers at scale: ``kefu.tasks.surveys.invite`` (fatigue cap counted for everyone
at once, one rendered and linted invitation mail per customer into the outbox) on a fresh SQLite file.

    .venv/bin/python bench/surveys.py [--customers 2000]

A tenth of the customers are key accounts, every customer has an e-mail address, a twentieth were asked twice in
the last 90 days (so the cap skips them). Prints one JSON object: customers, invited, skipped, seconds, ms each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from kefu.models.db import make_engine
from kefu.models.enums import CustomerTier
from kefu.models.migrate import upgrade
from kefu.models.people import Customer
from kefu.models.policy import load_policy
from kefu.models.surveys import CampaignKind, Segment, SurveyInvitation
from kefu.settings import DEFAULT_POLICY_FILE
from kefu.tasks.surveys import invite, open_campaign
from kefu.worktime import calendar_for

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    n = parser.parse_args().customers
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'kefu.db'}")
        upgrade(engine)
        policy = load_policy(DEFAULT_POLICY_FILE)
        calendar = calendar_for(policy)
        with Session(engine) as session:
            people = [
                Customer(code=f"B{i:07d}", name=f"客户{i}", email=f"c{i}@example.com",
                         tier=CustomerTier.KEY if i % 10 == 0 else CustomerTier.GENERAL)
                for i in range(n)
            ]  # fmt: skip
            session.add_all(people)
            session.flush()
            for month in (1, 2):  # two earlier campaigns asked every twentieth customer: the cap skips them
                earlier = open_campaign(
                    session, policy, calendar, kind=CampaignKind.AD_HOC, segment=Segment.ALL, reason="此前的调查",
                    launched_by="bench", now=NOW - dt.timedelta(days=30 * month),
                )  # fmt: skip
                session.add_all(
                    SurveyInvitation(campaign_id=earlier.id, customer_id=person.id, token_hash=f"{month}-{person.id}",
                                     created_at=earlier.opened_at)
                    for person in people[::20]
                )  # fmt: skip
            session.commit()
        with Session(engine) as session:
            campaign = open_campaign(
                session, policy, calendar, kind=CampaignKind.AD_HOC, segment=Segment.ALL, reason="bench",
                launched_by="bench", now=NOW,
            )  # fmt: skip
            started = time.perf_counter()
            report = invite(session, policy, calendar, campaign, NOW)
            session.commit()
            seconds = time.perf_counter() - started
        engine.dispose()
    print(json.dumps({
        "customers": n, "invited": len(report.invited), "skipped": len(report.skipped),
        "seconds": round(seconds, 2), "ms_per_customer": round(1000 * seconds / n, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
