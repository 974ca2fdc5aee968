"""Training: the LightningModule and what one run needs around it.

- ``module``: ``ContrastiveModule``, views -> encoder -> projector -> loss, with a kNN monitor.
- ``objectives``: how a loss takes part in a step (labels, momentum keys, a predictor), chosen
  once.
- ``momentum``: the momentum (EMA) encoder of MoCo and BYOL, and its schedules.
- ``fit``: one run from a composed config (what ``python -m orbitcl.train`` runs).
- ``job``, ``swept_keys``: one job of a sweep, its outcome recorded in ``result.json``.
- ``config``: building objects from config, with errors that name the field.
- ``resume``, ``nonfinite``, ``speed``, ``schedules``: exact resumes, non-finite losses, speed
  switches, learning-rate schedules.
"""
