"""Sweeps: plan a grid of jobs, run them on an executor, lease them."""
