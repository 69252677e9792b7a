"""pytest fixtures that bring the lab up for integration tests (filled in by the lab work)."""
