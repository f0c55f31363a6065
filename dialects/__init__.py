"""The `df` dialect, the target dialects `rdu` (SN40L) and `nv` (GPU) with the ops they share, and the shape rules."""
