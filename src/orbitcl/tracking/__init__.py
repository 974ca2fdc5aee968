"""Where results go: W&B logging that never blocks (``loggers``), the final value of every
metric (``last_metrics``) and the figures (``plots``)."""
