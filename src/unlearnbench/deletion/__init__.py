"""The deletion-request workflow: unlearn named records from a user's own model (a PyTorch
classifier or a Hugging Face causal LM) with any registered method, and write the unlearned
model and an audit report (``unlearnbench unlearn``, ``unlearnbench.delete``).

- ``user_model``: loading the model's three forms, fresh copies, saving the result;
- ``user_data``: the data files (.npz, JSONL), ids and the request's ids;
- ``user_scenario``: a Scenario around them, checked with one batch;
- ``audit``: scores before and after, membership inference, the report;
- ``verdicts``: the warnings those scores call for, and the speed-up over retraining;
- ``history``: the requests in the store, as ``unlearnbench show`` prints them;
- ``workflow``: ``delete``, the whole request."""
__all__ = ["delete"]


def __getattr__(name: str):
    # ``delete`` needs torch: loaded on first use, so that ``show`` reads ``history`` quickly.
    if name == "delete":
        from .workflow import delete
        return delete
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
