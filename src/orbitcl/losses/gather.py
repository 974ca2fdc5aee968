"""Gathering the two views under DDP, so that a rank's loss sees the negatives of every rank.

Under DDP each of the W ranks holds n images of the global batch of N = W n. Rank r gathers all
``z_a``, ``z_b`` (ordered by rank: ``z_a_global = cat(z_a of rank 0, ..., z_a of rank W-1)``) and
computes the loss of its own 2n anchors against all 2N columns (``images=`` of
``orbitcl.losses.functional``). The mean of the ranks' losses is then the one-process loss L on
the global batch. Every rank's loss depends on rank r's embeddings, so the gradient of the sum
of the ranks' losses (W L) with respect to them is the sum of every rank's gradient: the
backward all-reduces, and rank r's gradient is W times its rows of the gradient of L. DDP's
averaging of the parameter gradients divides by W, which makes training equal one-process
training on the global batch (with BatchNorm over the global batch, i.e. SyncBatchNorm). The
collectives themselves are ``orbitcl.parallel.collectives``.
"""

import torch
from torch import Tensor

from orbitcl.parallel import collectives


def gather_views(z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor, slice | None]:
    """The global ``(z_a, z_b)``, each (W n, d), and this rank's images in them (a slice).

    In one process (no process group, or a group of one) the views come back unchanged with
    ``None``: all images are this process's.
    """
    if collectives.world_size() == 1:
        return z_a, z_b, None
    # One collective for both views: (n, 2d) -> (W n, 2d).
    z = collectives.gather_with_grad(torch.cat([z_a, z_b], dim=1))
    z_a_all, z_b_all = z.split(z_a.shape[1], dim=1)  # 2 x (W n, d)
    return z_a_all, z_b_all, collectives.own_rows(len(z_a))
