"""unlearnbench: machine unlearning methods and evaluations behind one API."""
from .version import __version__
__all__ = ["scenario", "build_scenario", "unlearn", "evaluate", "delete", "__version__"]


def __getattr__(name: str):
    # The public functions need torch, which takes seconds to import: load them on first use,
    # so that `import unlearnbench` and `unlearnbench --help` start at once. No submodule
    # may share a name with them: importing it would bind the module over the function.
    if name in __all__:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'unlearnbench' has no attribute {name!r}")
