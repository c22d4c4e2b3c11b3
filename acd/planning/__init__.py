"""Workforce planning: queueing formulas for staffing (Erlang B, C and A)."""
