"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from kefu.models import Base


# SQLite cannot reflect expression indexes (ix_customers_email_lower): there the comparison skips it, and says so.
@pytest.mark.filterwarnings("ignore:.*expression-based index.*ix_customers_email_lower")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index ix_customers_email_lower")
def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
