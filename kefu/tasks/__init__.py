"""Tasks: small idempotent side effects (database, mail, Prefect API), taking ids, not ORM objects."""
