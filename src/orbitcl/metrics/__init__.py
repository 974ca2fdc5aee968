"""Measurements on embeddings, as pure functions (no Lightning): geometry (alignment,
uniformity, tension summaries), orbits of augmented views, weighted kNN (with the DDP gather of a
split) and the linear probe."""
