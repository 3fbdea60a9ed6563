"""Prefect flows: they only wire tasks; the work is in plain functions (``tumorcot.pipeline``)."""
