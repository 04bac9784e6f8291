"""Function forms of ``job.result`` / ``job.results`` (the Elixir library's ``Results``)."""

from __future__ import annotations

from typing import Any

from .job import Job


def get_result(job: Job, dep: str) -> Any:
    """The result of ``job``'s dependency ``dep``."""
    return job.result(dep)


def get_all_results(job: Job) -> dict[str, Any]:
    """Every dependency's result, keyed by step name."""
    return job.results()
