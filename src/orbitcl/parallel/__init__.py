"""Collectives across DDP processes."""
