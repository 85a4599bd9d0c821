"""ENet, the two-branch backbone of PENet (Hu et al., ICRA 2021): own code, official state_dict and maths.

Keys, shapes and forward maths equal the official ``ENet(args)`` with ``network_model='e'`` and
``convolutional_layer_encoding='xyz'`` (JUGGHM/PENet_ICRA2021 @ ee4318a, MIT; parity on
``shared/fixtures/penet``). Two ways in:

- :meth:`ENetCore.official` takes the official inputs ``rgb`` (0..255), ``d`` (m, 0 = none), ``position``
  (u/v in [-1, 1]) and ``K`` (B x 3 x 3), like the authors' ``forward(input)``;
- ``forward(image, sparse_inv_depth) -> (depth, confidence)``, the runtime's two-input contract
  (:mod:`depth_nodes.models.published_io`): the position map and K are made inside the graph from the input
  size and the K of the model's config, so ONNX Runtime / TensorRT / the node run it like any other family.

Geometry (``geometry`` parameter): the official encoding computes ``z * (0.5 * h * (v + 1) - cy) / fy`` with
``h = 352 / 2^k`` hard-coded and the position map normalised over the 352 x 1216 KITTI frame. ``"kitti_352x1216"``
keeps exactly that (parity); ``"image"`` (default) normalises over the real (padded) network input and uses its
size as ``h`` / ``w`` -- identical at 352 x 1216, and the only correct choice at any other size.
"""

from __future__ import annotations

import torch
from torch import nn

from depth_nodes.models.penet_blocks import (
    BasicBlockGeo,
    convbnrelu,
    deconvbnrelu,
    geometry_planes,
    sparse_downsample_close,
)

KITTI_HW = (352, 1216)
GEOMETRIES = ("image", "kitti_352x1216")
N_SCALES = 6  # full resolution and 5 halvings: the network's stride is 32


class ENetCore(nn.Module):
    """The official ENet layers; :meth:`features` is its forward with every output PENet needs."""

    def __init__(self) -> None:
        super().__init__()
        g = 3  # 'xyz' geometry planes
        chans = [(32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
                 (256, 512, 2), (512, 512, 1), (512, 1024, 2), (1024, 1024, 1)]  # fmt: skip
        self.rgb_conv_init = convbnrelu(4, 32, kernel_size=5, padding=2)
        for i, (cin, cout, s) in enumerate(chans, 1):
            setattr(self, f"rgb_encoder_layer{i}", BasicBlockGeo(cin, cout, s, g))
        for i, (cin, cout) in zip((8, 6, 4, 2, 0), ((1024, 512), (512, 256), (256, 128), (128, 64), (64, 32)), strict=True):
            setattr(self, f"rgb_decoder_layer{i}", deconvbnrelu(cin, cout))
        self.rgb_decoder_output = deconvbnrelu(32, 2, kernel_size=3, stride=1, padding=1, output_padding=0)
        self.depth_conv_init = convbnrelu(2, 32, kernel_size=5, padding=2)
        # the depth branch's odd layers 3, 5, 7, 9 also take the RGB decoder's features (concatenated)
        dchans = [(32, 64, 2), (64, 64, 1), (128, 128, 2), (128, 128, 1), (256, 256, 2), (256, 256, 1),
                  (512, 512, 2), (512, 512, 1), (1024, 1024, 2), (1024, 1024, 1)]  # fmt: skip
        for i, (cin, cout, s) in enumerate(dchans, 1):
            setattr(self, f"depth_layer{i}", BasicBlockGeo(cin, cout, s, g))
        for i, (cin, cout) in enumerate(((1024, 512), (512, 256), (256, 128), (128, 64), (64, 32)), 1):
            setattr(self, f"decoder_layer{i}", deconvbnrelu(cin, cout))
        self.decoder_layer6 = convbnrelu(32, 2, kernel_size=3, padding=1)

    def geometry(self, d, position, K, hw) -> list[torch.Tensor]:
        """The x/y/z planes at the 6 scales (official ``geo_s1..geo_s6``); ``hw`` = (h, w) at full scale."""
        unorm, vnorm = position[:, 0:1], position[:, 1:2]
        fy, cy = K[:, 1, 1].reshape(-1, 1, 1, 1), K[:, 1, 2].reshape(-1, 1, 1, 1)
        fx, cx = K[:, 0, 0].reshape(-1, 1, 1, 1), K[:, 0, 2].reshape(-1, 1, 1, 1)
        mask = torch.where(d > 0, torch.ones_like(d), torch.zeros_like(d))
        h, w = hw
        geo = []
        for k in range(N_SCALES):
            if k:
                vnorm = nn.functional.avg_pool2d(vnorm, 2)
                unorm = nn.functional.avg_pool2d(unorm, 2)
                d, mask = sparse_downsample_close(d, mask)
            geo.append(geometry_planes(d, vnorm, unorm, h / 2**k, w / 2**k, cy, cx, fy, fx))
        return geo

    def features(self, rgb, d, position, K, hw=KITTI_HW) -> dict[str, torch.Tensor]:
        """Official forward: ``rgb_depth``, ``d_depth``, ``output`` and the features PENet refines with."""
        g = self.geometry(d, position, K, hw)
        # (layer index -> geometry of its input and of its output): layers 1, 3, 5, 7, 9 halve the resolution
        gin = [None, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
        gout = [None, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        rgb_f = [self.rgb_conv_init(torch.cat((rgb, d), dim=1))]
        for i in range(1, 11):
            rgb_f.append(getattr(self, f"rgb_encoder_layer{i}")(rgb_f[-1], g[gin[i]], g[gout[i]]))
        plus = {10: rgb_f[10]}
        for i in (8, 6, 4, 2, 0):  # decoder with skips from rgb_f[8], [6], [4], [2], [0]
            plus[i] = getattr(self, f"rgb_decoder_layer{i}")(plus[i + 2]) + rgb_f[i]
        rgb_out = self.rgb_decoder_output(plus[0])
        rgb_depth, rgb_conf = rgb_out[:, 0:1], rgb_out[:, 1:2]

        x = self.depth_conv_init(torch.cat((d, rgb_depth), dim=1))
        sp = [x]
        for i in range(1, 11):
            if i in (3, 5, 7, 9):
                x = torch.cat([plus[i - 1], x], 1)
            x = getattr(self, f"depth_layer{i}")(x, g[gin[i]], g[gout[i]])
            sp.append(x)
        dec = [None]
        x = rgb_f[10] + sp[10]
        for i, skip in zip(range(1, 6), (8, 6, 4, 2, None), strict=True):
            dec.append(getattr(self, f"decoder_layer{i}")(x))
            x = sp[skip] + dec[i] if skip is not None else dec[i]
        depth_out = self.decoder_layer6(dec[5])
        d_depth, d_conf = torch.chunk(depth_out, 2, dim=1)
        rgb_w, d_w = torch.chunk(torch.softmax(torch.cat((rgb_conf, d_conf), dim=1), dim=1), 2, dim=1)
        return {
            "rgb_depth": rgb_depth,
            "d_depth": d_depth,
            "output": rgb_w * rgb_depth + d_w * d_depth,
            "feature_s1": torch.cat((plus[0], dec[5]), 1),
            "feature_s2": torch.cat((plus[2], dec[4]), 1),
        }


class CameraContract(nn.Module):
    """The runtime's contract for a published network: ``image`` (RGB 0..255: the family declares scale 1,
    mean 0, std 1) and ``sparse_inv_depth`` (1/m) in; the official inputs built in the graph (see module doc)."""

    input_names = ("image", "sparse_inv_depth")
    output_names = ("depth", "confidence")
    stride = 2 ** (N_SCALES - 1)

    def _setup(self, geometry: str, fx_px: float, fy_px: float, cx_px: float, cy_px: float,
               cy_offset_px: float) -> None:  # fmt: skip
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if not (fx_px > 0 and fy_px > 0):
            raise ValueError(f"focal lengths must be > 0, got fx_px={fx_px}, fy_px={fy_px}")
        self.geometry_mode = geometry
        # plain floats, not a buffer: the state_dict stays the official one; a constant of the exported graph
        self.camera_k = [[float(fx_px), 0.0, float(cx_px)], [0.0, float(fy_px), float(cy_px + cy_offset_px)],
                         [0.0, 0.0, 1.0]]  # fmt: skip

    def camera_inputs(self, image: torch.Tensor, sparse_inv_depth: torch.Tensor):
        """(rgb, d, position, K, hw) of the official network for a padded network input."""
        inv = sparse_inv_depth
        ok = inv > 0
        d = torch.where(ok, 1.0 / torch.where(ok, inv, torch.ones_like(inv)), torch.zeros_like(inv))
        rows = torch.arange(inv.shape[2], device=inv.device, dtype=inv.dtype)
        cols = torch.arange(inv.shape[3], device=inv.device, dtype=inv.dtype)
        if self.geometry_mode == "image":
            h, w = rows[-1:] + 1.0, cols[-1:] + 1.0  # tensors: the exported graph follows the input size
        else:
            h, w = float(KITTI_HW[0]), float(KITTI_HW[1])
        vnorm = (rows / (h - 1.0) * 2.0 - 1.0).reshape(1, 1, -1, 1) + torch.zeros_like(inv)
        unorm = (cols / (w - 1.0) * 2.0 - 1.0).reshape(1, 1, 1, -1) + torch.zeros_like(inv)
        K = torch.tensor(self.camera_k, device=inv.device, dtype=inv.dtype).unsqueeze(0).expand(inv.shape[0], 3, 3)
        return image, d, torch.cat((unorm, vnorm), 1), K, (h, w)

    @staticmethod
    def confidence(depth: torch.Tensor) -> torch.Tensor:
        """The networks estimate no confidence: 1 where they give a positive depth, else 0 (documented)."""
        return (depth > 0).to(depth.dtype)


class ENet(ENetCore, CameraContract):
    """ENet as a registry family (``enet``): the official layers plus the two-input runtime contract."""

    def __init__(self, geometry: str = "image", fx_px: float = 721.5377, fy_px: float = 721.5377,
                 cx_px: float = 596.5593, cy_px: float = 149.854, cy_offset_px: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self._setup(geometry, fx_px, fy_px, cx_px, cy_px, cy_offset_px)

    def official(self, rgb, d, position, K, hw=KITTI_HW):
        """``(rgb_depth, d_depth, output)`` exactly as the official ``ENet.forward`` (``hw`` = its 352, 1216)."""
        f = self.features(rgb, d, position, K, hw)
        return f["rgb_depth"], f["d_depth"], f["output"]

    def forward(self, image: torch.Tensor, sparse_inv_depth: torch.Tensor):
        depth = self.features(*self.camera_inputs(image, sparse_inv_depth))["output"]
        return depth, self.confidence(depth)
