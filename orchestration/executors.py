"""The Dagster executor of the code location, chosen by the run file's ``executor`` block.

``in_process`` (the default) runs every step of a run in the run's own process. ``multiprocess``
starts one process per step, at most ``max_concurrent`` at a time. ``k8s`` starts one Kubernetes
job per step through ``dagster-k8s``, which only the ``prod`` extra installs, so it is imported
only when a run file selects it.

The executor applies to runs launched from the Dagster UI, a schedule or a sensor. The
``riskcast`` CLI runs jobs with ``execute_in_process``, which ignores it.
"""

from __future__ import annotations

import importlib

import dagster as dg

from orchestration.jurisdiction import ConfigError
from orchestration.operations_config import ExecutorSettings

PROD_EXTRA_HINT = "install it with `pip install riskcast[prod]` (or `pip install -e '.[prod]'` in a checkout)"


def build_executor(settings: ExecutorSettings) -> dg.ExecutorDefinition:
    """Return the executor that ``settings.kind`` names, configured with its concurrency limit."""
    if settings.kind == "in_process":
        return dg.in_process_executor
    if settings.kind == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": settings.max_concurrent},
                                                   name="riskcast_multiprocess")
    return k8s_executor(settings)


def k8s_executor(settings: ExecutorSettings) -> dg.ExecutorDefinition:
    """Return ``dagster_k8s.k8s_job_executor`` configured from ``settings``; raise ConfigError without the package."""
    try:
        module = importlib.import_module("dagster_k8s")
    except ImportError as error:
        raise ConfigError(f"the run file sets executor.kind: k8s, but the dagster-k8s package is not "
                          f"installed; {PROD_EXTRA_HINT}, or set executor.kind to in_process or "
                          f"multiprocess") from error

    config: dict[str, object] = {"max_concurrent": settings.max_concurrent}
    if settings.job_namespace is not None:
        config["job_namespace"] = settings.job_namespace
    if settings.env_vars:
        config["env_vars"] = list(settings.env_vars)
    return module.k8s_job_executor.configured(config, name="riskcast_k8s")
