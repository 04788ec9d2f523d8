"""Intake, the front door for complaints: the customers' web form and status page, the gateway API, the
registration write path, and the outbox dispatcher and reconciler that start each case's flow run."""
