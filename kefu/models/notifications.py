"""Tables of the notifications part (placeholder until its issue lands)."""
