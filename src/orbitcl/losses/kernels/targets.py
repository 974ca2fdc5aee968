"""Weights of weighted InfoNCE in the forms the blocked kernels apply without passes of their own:
by class (``ClassTargets``) and by low-rank logits (``LogitTargets``); a dense (2n, 2N) tensor is
the third form.

Weights that depend on the anchors' classes only are applied without a (2N, 2N) matrix.

SupCon, Soft SupCon and X-CLR weight a pair of anchors by a class affinity ``F`` (C, C) >= 0:

    W_ij = F[y_i, y_j] / Z_i   for j != i,   W_ii = 0,   Z_i = sum_{k != i} F[y_i, y_k].

The weighted InfoNCE kernel (``blocked``) needs W only through ``W z`` (its forward term
``sum_k W_ik G_ik = z_i . (W z)_i`` and the backward's ``- W z``) and ``W^T z_rows`` (the
backward's ``- W^T`` into the columns). Both go through the class sums of the anchors, O(N d C)
instead of the O(N^2) passes over a dense W and its ``P - W``:

    (W z)_i       = (sum_c F[y_i, c] S_c - F[y_i, y_i] z_i) / Z_i,   S_c = sum_{y_k = c} z_k,
    (W^T u)_k     = sum_c F[c, y_k] U_c - F[y_k, y_k] u'_k / Z_k,    U_c = sum_{y_i = c} u_i / Z_i,

where u are the rows (a process's share of the anchors) and ``u'_k`` the row of anchor k if it
is one (else 0). ``Z_i = sum_c F[y_i, c] (n_c - 1[c = y_i])``, with n_c the anchors of class c,
has no cancellation: every term is >= 0.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from orbitcl.losses.kernels.workspace import scratch


@dataclass
class ClassTargets:
    """``W`` of the rows (2n,) over all anchors (2N,): ``y`` (2N,) the anchors' class indices in
    ``[0, C)``, ``affinity`` F (C, C) >= 0 with every anchor's ``Z_i > 0``, ``cols`` (2n,) the
    rows' anchors (``anchors.anchor_rows``). All in the anchors' dtype and on their device.

    Class sums and gathers are products with the one-hot matrix of the classes (2N, C): on a CPU
    a scatter-add of 2N rows into C is an order of magnitude slower than the matmul."""

    y: Tensor
    affinity: Tensor
    cols: Tensor

    def __post_init__(self) -> None:
        f = self.affinity
        # A scatter, not F.one_hot: one_hot checks the classes' range on the host (min, max:
        # a device sync each); an index out of [0, C) fails in the scatter instead.
        self.one_hot = f.new_zeros(len(self.y), len(f)).scatter_(1, self.y[:, None], 1.0)  # (2N, C)
        self.all_rows = len(self.cols) == len(self.y)  # one process: cols = arange(2N)
        self.rows_one_hot = self.one_hot if self.all_rows else self.one_hot[self.cols]
        counts = self.one_hot.sum(0)  # n_c
        # Z per class: sum_c' F[c, c'] (n_c' - 1[c' = c])
        per_class = (f * counts).sum(1) - f.diagonal()
        self.inv_z = self.rows_one_hot @ per_class.reciprocal()  # (2n,) 1 / Z_i of the rows
        self.self_weight = self.rows_one_hot @ f.diagonal()  # (2n,) F[y_i, y_i]

    def times(self, z: Tensor, z_rows: Tensor) -> Tensor:
        """``W z`` (2n, d) for the anchors ``z`` (2N, d), ``z_rows`` = ``z[cols]``."""
        sums = self.one_hot.T @ z  # S_c (C, d)
        mixed = self.rows_one_hot @ (self.affinity @ sums)  # sum_c F[y_i, c] S_c
        mixed.addcmul_(self.self_weight[:, None], z_rows, value=-1.0)
        return mixed.mul_(self.inv_z[:, None])

    def transposed_times(self, u: Tensor) -> Tensor:
        """``W^T u`` (2N, d) for one vector per row, ``u`` (2n, d)."""
        scaled = u * self.inv_z[:, None]  # u_i / Z_i
        sums = self.rows_one_hot.T @ scaled  # U_c (C, d)
        out = self.one_hot @ (self.affinity.T @ sums)  # (2N, d): sum_c F[c, y_k] U_c
        own = scaled.mul_(self.self_weight[:, None])  # the self terms, at the rows' anchors
        return out.sub_(own) if self.all_rows else out.index_add_(0, self.cols, own, alpha=-1.0)


@dataclass
class LogitTargets:
    """``W`` of the rows, row-normalised ``exp(left right^T)`` with 0 at k = i
    (``weight_forms.LogitWeights``): ``left`` (2n, r) of the rows, ``right`` (2N, r). The
    blocked kernels compute a block's ``exp(l)`` (``block``) in its forward and again in its
    backward (a product of r columns and an exp: cheaper than reading a kept (2N, 2N) matrix)."""

    left: Tensor
    right: Tensor

    def block(self, left: Tensor, self_cols: Tensor) -> Tensor:
        """``exp(left right^T)`` (2b, 2N) of a block's rows ``left`` (2b, r), 0 at their own
        columns ``self_cols`` (2b,), in a scratch buffer."""
        out = scratch("targets", (len(left), len(self.right)), self.right)
        kernel = torch.mm(left, self.right.T, out=out).exp_()
        kernel[torch.arange(len(left), device=left.device), self_cols] = 0.0
        return kernel
