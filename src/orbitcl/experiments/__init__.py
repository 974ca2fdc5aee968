"""Experiments beyond one run: trained runs loaded back (``runs``), sweeps (``sweep``: the end
of a sweep, while each job records its outcome with ``orbitcl.training.job``; ``launchers``:
the SLURM jobs' shape, checked before submitting) and the sweep report (``report``: collect,
summarise, render)."""
