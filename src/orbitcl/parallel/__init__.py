"""What runs across the processes of a DDP job: the collectives every other package calls."""
