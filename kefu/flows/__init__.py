"""Flows: one business process per file, read top to bottom as verb-named steps."""
