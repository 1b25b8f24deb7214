"""What beat sends: the reaper of lost work and the re-evaluation check."""
