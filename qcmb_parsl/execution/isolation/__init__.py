"""Every fragment's engine in a process of its own, forked from a warm template.

An engine that segfaults, runs out of memory or runs past its time limit takes only its own process
with it: never the Parsl worker, never the driver. The template (one per worker process, started on
first use) has QCEngine, the harnesses and the engines' Python modules imported, so a fragment's
process costs a fork, not an interpreter start.
"""

from .client import (
    ChildOutcome,
    EngineJob,
    FragmentLimits,
    allow_running,
    cancel_running,
    end_template,
    isolated_compute,
    isolated_compute_many,
)

__all__ = [
    "ChildOutcome",
    "EngineJob",
    "FragmentLimits",
    "allow_running",
    "cancel_running",
    "end_template",
    "isolated_compute",
    "isolated_compute_many",
]
