"""Running fragment tasks: the executors, what runs on a worker, ordering, retries and progress."""
