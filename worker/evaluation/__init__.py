"""Standardized evaluation: sources, registered specs and metrics, and the batched engine."""
