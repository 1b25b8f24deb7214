"""What beat sends: the reaper of lost work, the reconciler of lost messages, re-evaluation."""
