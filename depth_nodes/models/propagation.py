"""CSPN++/NLSPN-style propagation on top of :class:`~depth_nodes.models.families.Residual`: the ``learned`` model.

The residual body predicts, besides the refined inverse depth, 8 affinities per pixel (the 3x3 neighbours) and
a gate for the LiDAR returns. A fixed number of unrolled iterations then propagates at 1/4 resolution::

    a_i = tanh(r_i) / (1 + sum_j |tanh(r_j)|)        normalised: sum |a_i| < 1, so the iteration is stable
    d  <- (1 - sum_i a_i) d + sum_i a_i shift_i(d)   (shift_i = one fixed one-hot 3x3 convolution, 8 outputs)
    d  <- g v s + (1 - g v) d                          returns re-injected each step (v = valid, g = sigmoid gate)

At 1/4 resolution a 3x3 step reaches 4 px of the frame, so 6 steps spread over 24 px; propagating at full
resolution (the first shipped model) cost half of the CPU time for 8-channel full-resolution tensors. After
the full-resolution head the returns are re-injected once more through a gate the head predicts.

Plain ops only (Conv with a constant kernel, Tanh, Abs, ReduceSum, Mul/Add), no gather/unfold or deformable
convolution, so it exports to ONNX and builds on TensorRT like the rest.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from depth_nodes.models.families import Residual

N_NEIGHBOURS = 8


def _shift_kernel() -> torch.Tensor:
    """8 x 1 x 3 x 3 one-hot kernels: output i = the value of neighbour i (row-major, centre skipped)."""
    k = torch.zeros(N_NEIGHBOURS, 1, 3, 3)
    idx = [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]
    for i, (r, c) in enumerate(idx):
        k[i, 0, r, c] = 1.0
    return k


class Propagation(Residual):
    """Residual refinement + ``iterations`` steps of normalised-affinity propagation with re-injected returns."""

    extra_outputs = N_NEIGHBOURS + 1  # affinities + return gate, consumed at 1/4 resolution
    head_extra = 1  # the full-resolution return gate

    def __init__(
        self,
        width=16,
        levels=3,
        head_hidden=8,
        iterations=6,
        min_depth_m=1.0,
        max_depth_m=120.0,
        decoder="light",
        clamp_px=0,
    ):
        super().__init__(width, levels, head_hidden, min_depth_m, max_depth_m, decoder, clamp_px)
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self.iterations = int(iterations)
        self.register_buffer("shift", _shift_kernel(), persistent=False)

    def propagate(self, d, rel, gate_logit, sparse_n, valid):
        t = torch.tanh(rel)
        aff = t / (1.0 + torch.sum(torch.abs(t), dim=1, keepdim=True))
        centre = 1.0 - torch.sum(aff, dim=1, keepdim=True)
        gate = torch.sigmoid(gate_logit + 2.0) * valid
        keep = 1.0 - gate
        inject = gate * sparse_n
        for _ in range(self.iterations):
            nb = F.conv2d(F.pad(d, (1, 1, 1, 1), mode="replicate"), self.shift)
            d = centre * d + torch.sum(aff * nb, dim=1, keepdim=True)
            d = keep * d + inject
        return d

    def coarse(self, image, sparse_n, valid):
        out, fill, s4, v4 = self.body(image, sparse_n, valid)
        d = fill + 0.05 * torch.tanh(out[:, :1])
        e = 2 + N_NEIGHBOURS
        d = self.propagate(d, out[:, 2:e], out[:, e : e + 1], s4, v4)
        return torch.cat([d, out[:, 1:2], out[:, e + 1 :]], dim=1)

    def forward(self, image: torch.Tensor, sparse_inv_depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, conf_logit, gate_logit, sparse_n, valid = self.core(image, sparse_inv_depth)
        gate = torch.sigmoid(gate_logit + 2.0) * valid
        d = self.clamp(d + gate * (sparse_n - d), sparse_n, valid)
        return self.to_depth(d), torch.sigmoid(conf_logit)
