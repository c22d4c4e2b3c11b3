"""The load simulator: scenarios, caller draws, virtual and live runs, staffing search."""
