"""unlearnbench: machine unlearning methods and evaluations behind one API."""
from .api import build_scenario, delete, evaluate, scenario, unlearn

__version__ = "0.1.0"
__all__ = ["scenario", "build_scenario", "unlearn", "evaluate", "delete", "__version__"]
