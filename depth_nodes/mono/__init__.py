"""Monocular fallback: depth from the camera alone, made metric by fitting it to the LiDAR.

``scale`` (robust scale/shift fits, tracked over time), ``hf`` (Depth Anything V2 and Prompt Depth Anything
through ``transformers``), ``net`` (our own small monocular network, shipped under ``weights/``),
``estimator`` (the pipeline's monocular estimators), ``completer`` (``depth-nodes eval --method mono``), ``bench`` (``depth-nodes bench mono``), ``export`` (ONNX).
torch and transformers are imported only when a model is loaded.
"""
