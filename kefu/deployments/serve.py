"""The runner process of ``kefu up``: serves every deployment of ``all_deployments``."""

from __future__ import annotations

from prefect import serve

from kefu.deployments import all_deployments


def main() -> None:
    serve(*all_deployments())


if __name__ == "__main__":
    main()
