"""Metrics: one module per metric family, each registering functions with
``@metrics.register(name, tasks=..., goal=..., title=..., unit=..., group=...)`` (what each
says: ``registry.check_metric``). A metric takes an ``Evaluation`` (see
``evaluation.py``) and returns a ``MetricResult``; inference goes through the shared cache."""
