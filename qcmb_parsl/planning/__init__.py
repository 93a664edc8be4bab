"""From a ManyBodyInput to fragment tasks: input checks, the plan, and each fragment's expected cost."""

from .plan import FragmentTask, plan_tasks, specifications_from_input

__all__ = ["FragmentTask", "plan_tasks", "specifications_from_input"]
