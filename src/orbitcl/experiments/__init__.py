"""Experiments beyond one run: trained runs loaded back (``runs``), sweeps (``sweep``,
``swept_keys``) and the sweep report (``report``: collect, summarise, render)."""
