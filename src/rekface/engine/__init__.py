"""The face engine: decode, detect, align, embed, pose, quality, calibrated similarity.

One module per stage, numpy in and numpy out; only ``models`` touches onnxruntime sessions.
"""
