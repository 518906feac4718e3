"""Cloud-free composites: cloud masks, spectral indices, per-pixel median over a window."""
