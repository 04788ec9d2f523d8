"""The runner process of ``kefu up``: serves every deployment of ``all_deployments``."""

from __future__ import annotations

from prefect import serve

from kefu.deployments import all_deployments
from kefu.settings import get_settings


def main() -> None:
    only = set(get_settings().serve_only)
    serve(*[d for d in all_deployments() if not only or d.name in only])


if __name__ == "__main__":
    main()
