"""The run contract: what the parts that create case runs and the parts that execute them agree on.

The dispatcher, the reconciler, ``kefu step`` and the tests create or find ``complaint-case`` runs; the
flow and the workers execute them. Both sides read the names, the one parameter, the run name and the
idempotency key from here, so a rename is one edit and cannot leave a creator and the flow disagreeing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

COMPLAINT_CASE_FLOW = "complaint-case"
COMPLAINT_CASE_DEPLOYMENT_NAME = "complaint-case"
COMPLAINT_CASE_DEPLOYMENT = f"{COMPLAINT_CASE_FLOW}/{COMPLAINT_CASE_DEPLOYMENT_NAME}"  # as Prefect names it
CASE_PARAMETER = "case_no"  # the case flow's one parameter: only the case number travels to Prefect
CASE_RUN_NAME = "case {case_no}"  # the flow's flow_run_name template: operators find a case by its number
CASE_TAG = "kefu:case"  # every case run carries it: the Runs list filtered by it shows cases, not background duties
CASE_RUN_TAGS = ("kefu", "complaint", CASE_TAG)
WORK_POOL = "kefu"  # the work pool every Kefu deployment belongs to, and the Kefu worker type's default pool


def made_at(moment: dt.datetime) -> str:
    """The moment a record was made, as the run keys of records numbered by Kefu's database carry it: ids and numbers
    restart with a new database (a restore, a recreated one) while the Prefect server keeps its runs, so a key of the
    id alone hands a new record the run of the old record that had its id, and the new one never waits for anyone.
    The moment differs between the two and is the same for every start of the same record (a retry, a replay, the
    deadline duty's mend, ``kefu recover``)."""
    return f"{moment.astimezone(dt.UTC):%Y%m%dT%H%M%S%f}"


class CaseRef(NamedTuple):
    """A complaint as the creators of its case run name it: its case number and the moment it was registered (the
    complaint's ``created_at``)."""

    case_no: str
    made: dt.datetime


def complaint_case_idempotency_key(case: CaseRef) -> str:
    """One case flow run per complaint: every creator of case runs passes this key. Case numbers restart with a new
    database (each day's counter starts again): the moment the complaint was registered is part of it."""
    return f"complaint-case:{case.case_no}:{made_at(case.made)}"


def legacy_case_idempotency_key(case_no: str) -> str:
    """The key of case runs created before the moment was part of it. Such a run counts only as the run Kefu recorded
    for the case (the reconciler and ``kefu recover`` leave it be); it is never adopted, for it may be the run of an
    old database's complaint with the same number."""
    return f"complaint-case:{case_no}"


def case_run_name(case_no: str) -> str:
    return CASE_RUN_NAME.format(**case_run_parameters(case_no))


def case_run_parameters(case_no: str) -> dict[str, Any]:
    """The parameters of a case run (no personal data: the number alone)."""
    return {CASE_PARAMETER: case_no}


# Key-account onboarding (issue 15): one run per nomination, named after the customer's code; one review run per
# department of the policy's list, each suspended on its own form.
ONBOARDING_FLOW = "key-account-onboarding"
ONBOARDING_DEPLOYMENT = f"{ONBOARDING_FLOW}/{ONBOARDING_FLOW}"
ONBOARDING_TAG = "key-account-onboarding"
ONBOARDING_RUN_TAGS = ("kefu", "key-account", ONBOARDING_TAG)
ONBOARDING_RUN_NAME = "{code}"
REVIEW_FLOW = "onboarding-review"
REVIEW_DEPLOYMENT = f"{REVIEW_FLOW}/{REVIEW_FLOW}"
REVIEW_RUN_NAME = "{code} {department}"


def onboarding_idempotency_key(nomination_id: int, nominated_at: dt.datetime) -> str:
    """One onboarding run per nomination, whoever opens it (the monthly scoring, ``kefu account nominate``, the
    sweep that opens runs Prefect was not there for); ``nominated_at``: the nomination's ``at``."""
    return f"key-account-onboarding:{nomination_id}:{made_at(nominated_at)}"


def review_idempotency_key(nomination_id: int, department: str, nominated_at: dt.datetime) -> str:
    """One review run per nomination and department, however often the onboarding run replays."""
    return f"onboarding-review:{nomination_id}:{department}:{made_at(nominated_at)}"


# The staff assessment (seed 004 §5): the monthly run opens the month; one sheet run per person and evaluator (self,
# supervisor), each suspended on its own form.
ASSESSMENT_FLOW = "staff-assessment"
ASSESSMENT_DEPLOYMENT = f"{ASSESSMENT_FLOW}/{ASSESSMENT_FLOW}"
SHEET_FLOW = "assessment-sheet"
SHEET_DEPLOYMENT = f"{SHEET_FLOW}/{SHEET_FLOW}"
SHEET_RUN_NAME = "{month} staff {staff_id} {evaluator}"
ASSESSMENT_RUN_TAGS = ("kefu", "staff-assessment")


def sheet_idempotency_key(sheet_id: int, evaluator: str, created_at: dt.datetime) -> str:
    """One run per sheet and evaluator, however often the monthly run or the duty's mend opens it; ``created_at``:
    the sheet's."""
    return f"assessment-sheet:{sheet_id}:{evaluator}:{made_at(created_at)}"
