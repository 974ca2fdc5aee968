"""Augmentation of a whole batch at once, on the device: random resized crops, affine maps and
flips (``geometry``), colour jitter and greyscale (``colour``), composed by ``augment``."""
