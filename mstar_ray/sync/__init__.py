"""Weight sync from trainer rank 0 to the rollout engines: bucketed broadcasts over one process group."""
