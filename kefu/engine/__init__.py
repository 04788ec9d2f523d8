"""The Prefect adapter: everything in Kefu that knows Prefect's API or its private parts.

- ``contract``: the run contract (flow and deployment names, the ``case_no`` parameter, run names, the
  idempotency key) shared by whoever creates case runs and whoever serves them.
- ``waiting``: suspend a run until a person answers, and read the answers a resumed run already has.
- ``steps``: the human-step kit every process uses (complaints now; onboarding, surveys next).
- ``prefect_private``: the one module that touches Prefect names outside its public API, checked at
  worker start-up against the installed Prefect.
- ``worker``: the Kefu worker type (``kefu``) on the work pool, executing runs in threads (``kefu worker``).
- ``rest``: the REST client the intake dispatcher creates and finds case runs with.

Layering rule. The engine sits beside ``kefu.deployments`` above ``kefu.flows``, but flows need a part of it
(the step kit, waiting, the run contract). So the engine is split in two:

- ``contract``, ``waiting``, ``steps`` and ``prefect_private`` are *flow-facing*: flows import them, and they
  import only Prefect, the standard library and Kefu's lower layers (``kefu.models`` and below) — never
  ``kefu.flows``, ``kefu.deployments``, ``kefu.tasks`` or the rest of the engine above them.
- ``worker`` and ``rest`` are *serving-side*: they may import ``kefu.deployments`` (what is served) and the
  flow-facing modules, and nothing under ``kefu.flows`` imports them.

This package's ``__init__`` imports nothing, so importing a flow-facing module stays light.
"""
