"""Names shared between the parts that create runs and the parts that serve them."""

from __future__ import annotations

COMPLAINT_CASE_FLOW = "complaint-case"
COMPLAINT_CASE_DEPLOYMENT = "complaint-case/complaint-case"  # "<flow name>/<deployment name>"


def complaint_case_idempotency_key(case_no: str) -> str:
    """One case flow run per complaint: every creator of case runs passes this key."""
    return f"complaint-case:{case_no}"


CASE_RUN_NAME = "case {case_no}"  # the flow's flow_run_name template: operators find a case by its number


def case_run_name(case_no: str) -> str:
    return CASE_RUN_NAME.format(case_no=case_no)
