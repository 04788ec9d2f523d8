"""The daily contact-cadence check at scale (``kefu.tasks.cadence.check_cadence``, what the ``contact-cadence`` flow
runs): ``--customers`` general customers on a fresh SQLite database, none contacted this quarter, checked on a
working day inside the quarter's reminder window — every one gets its reminder (a ``cadence_notices`` row and a
rendered, linted internal mail) — then checked again the same day (nothing is told twice).

Prints one JSON object: the customers, the reminders of the first run and its seconds, the seconds of the re-run
and what it told (0).

    .venv/bin/python bench/cadence.py [--customers 2000]
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

from kefu.models import Customer, Role, Staff
from kefu.models.db import make_engine
from kefu.models.migrate import upgrade
from kefu.models.policy import current_policy
from kefu.tasks.cadence import check_cadence
from kefu.worktime import calendar_for

CHECKED_AT = dt.datetime(2026, 9, 23, 9, tzinfo=ZoneInfo("Asia/Shanghai"))  # Q3's reminder window, a Wednesday


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'cadence.db'}")
        upgrade(engine)
        with Session(engine) as session:
            for n in range(5):
                agent = Staff(name=f"客服{n}", login=f"agent{n}", email=f"agent{n}@kefu.example.com", on_duty=["wed"])
                agent.grant(Role.AGENT)
                session.add(agent)
            since = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
            session.add_all(
                Customer(code=f"B{n:06d}", name=f"客户{n}", created_at=since) for n in range(args.customers)
            )
            session.commit()
        policy = current_policy()
        calendar = calendar_for(policy)
        timings = []
        told = []
        for _ in range(2):
            with Session(engine) as session:
                start = time.perf_counter()
                report = check_cadence(session, policy, calendar, CHECKED_AT)
                session.commit()
                timings.append(time.perf_counter() - start)
                told.append(len(report.notices))
        engine.dispose()
    print(json.dumps({
        "customers": args.customers, "reminded": told[0], "first_run_s": round(timings[0], 2),
        "rerun_s": round(timings[1], 3), "rerun_told": told[1],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
