"""Registrations of the published networks the project re-implements (builders imported lazily: no torch here).

``enet`` / ``penet``: ENet and PENet (``PENet_C2``, dilation 2) of JUGGHM/PENet_ICRA2021 (MIT code; weights from
the authors' README). Their official checkpoints become model directories with ``depth-nodes model import``
(:mod:`depth_nodes.models.checkpoint`, never unpickled); ``docs/models.md`` ("Bring a published checkpoint").

Camera intrinsics: the networks encode each pixel's 3-D ray, so they need the K of the image they see. The
config holds it (``fx_px, fy_px, cx_px, cy_px``, pixels of the network input, origin top-left: the runtime pads
bottom/right, which keeps K); the default is the true K of a KITTI depth-completion frame (2011_09_26
``P_rect_02`` bottom-cropped from 375 x 1242 to 352 x 1216: cx - 13, cy - 23). The released weights were trained
with the official loader's fixed K, whose cy is shifted by only 11.5 px although it crops from the bottom:
``cy_offset_px`` 11.5 reproduces that convention (:data:`KITTI_TRAIN_CY_OFFSET_PX`); 0 (default) is the true K.
"""

from __future__ import annotations

from depth_nodes.models.registry import FUSION_IO_OUTPUTS, Family, register

#: 2011_09_26 P_rect_02 (the official loader's calib file): fx, fy, cx, cy of the 375 x 1242 image.
KITTI_P_RECT_02 = (721.5377, 721.5377, 609.5593, 172.854)
#: the true K of the 352 x 1216 bottom-centre crop (cx - 13, cy - 23)
KITTI_DC_K = (721.5377, 721.5377, 609.5593 - 13.0, 172.854 - 23.0)
#: cy of the released weights' training K minus the true one: the official loader subtracts 11.5, not 23
KITTI_TRAIN_CY_OFFSET_PX = 23.0 - 11.5

PUBLISHED_DEFAULTS = {
    "geometry": "image",
    "fx_px": KITTI_DC_K[0],
    "fy_px": KITTI_DC_K[1],
    "cx_px": KITTI_DC_K[2],
    "cy_px": KITTI_DC_K[3],
    "cy_offset_px": 0.0,
}
PUBLISHED_INPUTS = {
    "image": {
        "layout": "NCHW",
        "units": "RGB 0..255, not normalised",
        "normalisation": {"scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    },
    "sparse_inv_depth": {"layout": "NCHW", "units": "1/m, 0 = no LiDAR return (the graph turns it into metres)"},
}
#: ONNX parity (``runtime.export``): |torch - ORT| <= 1e-3 m + 1e-4 x max |depth|, the fixture's relative bound
PARITY_REL_TOLERANCE = 1e-4
PUBLISHED_OUTPUTS = {
    "depth": {**FUSION_IO_OUTPUTS["depth"], "parity_rel_tolerance": PARITY_REL_TOLERANCE},
    "confidence": {"layout": "NCHW", "units": "0..1: 1 where the network gives a positive depth (no confidence head)"},
}

#: family -> (builder, description, official class, checkpoint args that identify it)
PUBLISHED = {
    "enet": (
        "depth_nodes.models.enet:ENet",
        "ENet (PENet's backbone, ICRA 2021): official weights via `depth-nodes model import enet`",
        "ENet",
        {"network_model": "e"},
    ),
    "penet": (
        "depth_nodes.models.penet:PENet",
        "PENet_C2 (dilation 2, the released PENet, ICRA 2021): official weights via `depth-nodes model import penet`",
        "PENet_C2",
        {"network_model": "pe", "dilation_rate": 2},
    ),
}

for _name, (_builder, _desc, _cls, _args) in PUBLISHED.items():
    register(
        Family(
            name=_name,
            builder=_builder,
            defaults=dict(PUBLISHED_DEFAULTS),
            description=_desc,
            inputs=PUBLISHED_INPUTS,
            outputs=PUBLISHED_OUTPUTS,
        )
    )
