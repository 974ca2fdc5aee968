"""Experiments beyond one run: trained runs loaded back (``runs``), sweeps (``sweep``,
``swept_keys``; ``launchers``: the SLURM jobs' shape, checked before submitting) and the sweep
report (``report``: collect, summarise, render)."""
