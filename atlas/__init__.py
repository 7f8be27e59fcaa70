"""Atlas layer: NIfTI parcellations and structural connectomes into network specs (see the atlas issue)."""
