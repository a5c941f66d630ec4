"""The worker's runtime: the conductor (consume, dispatch, commit) and the worker."""
