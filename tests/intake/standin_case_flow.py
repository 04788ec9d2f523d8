"""A stand-in ``complaint-case`` flow for the crash tests when the real case flow is not importable.

Same flow and deployment names and the same one parameter (``case_no``); it does nothing else.
"""

from __future__ import annotations

from prefect import flow


@flow(name="complaint-case", log_prints=False)
def complaint_case(case_no: str) -> str:
    return case_no


if __name__ == "__main__":
    complaint_case.serve(name="complaint-case", limit=2)
