"""Intake: the web form, the gateway API, the outbox dispatcher and the reconciler (issue 4)."""
