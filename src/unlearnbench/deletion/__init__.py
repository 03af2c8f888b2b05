"""The deletion-request workflow: unlearn named records from a user's own model (a PyTorch
classifier or a Hugging Face causal LM) with any registered method, and write the unlearned
model and an audit report (``unlearnbench unlearn``, ``unlearnbench.delete``).

- ``user_model``: loading the model's three forms, fresh copies, saving the result;
- ``user_data``: the data files (.npz, JSONL), ids and the request's ids;
- ``user_scenario``: a Scenario around them, checked with one batch;
- ``audit``: scores before and after, membership inference, the report;
- ``workflow``: ``delete``, the whole request."""
from .workflow import delete

__all__ = ["delete"]
