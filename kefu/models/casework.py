"""Tables of the casework part (placeholder until its issue lands)."""
