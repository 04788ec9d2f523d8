"""Tables of the intake part (placeholder until its issue lands)."""
