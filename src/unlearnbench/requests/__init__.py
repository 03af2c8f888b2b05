"""Forget requests: which records to forget, manipulated data, validation requests, worst-case sets."""
