"""The population statistics that `unlearnbench population` records (``studies/population.py``;
formulas in ``stats/population.py``), registered for how tables title, show and rank them.
Each comes from N unlearned and N retrained models, never from one model, so it applies to
no task that `evaluate` scores (``tasks=("population",)``)."""
from ..registry import metrics
from ..stats import population as stats

POPULATION = ("population",)

metrics.register("challenge_score", tasks=POPULATION, goal="higher", unit="fraction",
                 title="Challenge score", group="overall", column=20, headline=True,
                 description="NeurIPS 2023 challenge score: forget quality F x the RA and TA "
                             "ratios to the retrained models.")(stats.challenge_score)
metrics.register("challenge_forget_quality", tasks=POPULATION, goal="higher", unit="fraction",
                 title="Challenge F", group="forget", column=21,
                 description="NeurIPS 2023 challenge forget quality F: mean points of the "
                             "per-example epsilon buckets (1 = indistinguishable)."
                 )(stats.forget_quality)
metrics.register("ulira_forget", tasks=POPULATION, goal=0.5, unit="fraction",
                 title="U-LiRA forget", group="privacy", column=22, headline=True,
                 description="U-LiRA-style attack accuracy on forget, unlearned vs retrained "
                             "models (0.5 = indistinguishable).")(stats.ulira_accuracy)
metrics.register("klom_forget_mean", tasks=POPULATION, goal="lower", unit="nats",
                 title="KLoM forget", group="forget", column=23, headline=True,
                 description="KLoM on forget: mean over examples of the binned KL divergence "
                             "of unlearned from retrained margins.")(stats.klom)
metrics.register("klom_forget_p99", tasks=POPULATION, goal="lower", unit="nats",
                 title="KLoM f p99", group="forget", column=24,
                 description="KLoM on forget: 99th percentile over examples of the binned KL "
                             "divergence.")(stats.klom)


def _recorded(*_args, **_kwargs):
    """Computed and recorded by ``studies/population.py`` beside the others."""
    raise NotImplementedError("a population statistic is recorded by `unlearnbench population`")


metrics.register("ulira_retain", tasks=POPULATION, goal=0.5, unit="fraction",
                 title="U-LiRA retain", group="privacy",
                 description="U-LiRA-style attack accuracy on retain, unlearned vs retrained "
                             "models (0.5 = indistinguishable).")(stats.ulira_accuracy)
metrics.register("ulira_test", tasks=POPULATION, goal=0.5, unit="fraction",
                 title="U-LiRA test", group="privacy",
                 description="U-LiRA-style attack accuracy on test, unlearned vs retrained "
                             "models (0.5 = indistinguishable).")(stats.ulira_accuracy)
metrics.register("klom_test_mean", tasks=POPULATION, goal="lower", unit="nats",
                 title="KLoM test", group="utility",
                 description="KLoM on test: mean over examples of the binned KL divergence of "
                             "unlearned from retrained margins.")(stats.klom)
metrics.register("population_seconds", tasks=POPULATION, goal="lower", unit="s",
                 title="Population s", group="cost",
                 description="Seconds to unlearn the method's N models and score the "
                             "population.")(_recorded)
