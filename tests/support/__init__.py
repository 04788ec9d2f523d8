"""What the tests and the benchmarks share, in one place.

The fixture modules are pytest plugins, named once in ``pytest_plugins`` at the root of ``tests/``; tests and
``bench/`` import the helpers and the sample data from here, never from one another.

- ``clock``: the ``SHANGHAI`` zone, the one fixed moment (``RECEIVED``), ``FixedClock`` and the ``clock``
  fixture, ``unique_receipt_time``.
- ``processes``: ``free_port``, starting a process the way ``kefu up`` does (own process group, log file),
  ``wait_healthy``, ``read_until``, ``kill_9``/``stop`` and ``Restartable``.
- ``postgres``: whether the test PostgreSQL answers, and scratch databases on it (no pytest needed).
- ``databases``: the database fixtures (``migrated_database``, ``engine``, ``db``, ``database_url``,
  ``sqlite_engine``, ``case_db_url``, ``kefu_database_url``), the policy and the calendar.
- ``prefect``: the session's Prefect server, Kefu's runner as a process, the ``complaint-case``
  deployment and reading its runs.
- ``factories``: the staff ladder, customers and complaints.
- ``samples``: gateway token, complaint bodies, intake settings, message contexts.
- ``intake``: the intake app on the test database behind an HTTP client.
- ``smtp``: a real SMTP server (aiosmtpd) with injected faults.
- ``browser``: headless Chromium over the DevTools protocol.
"""
