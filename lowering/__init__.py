"""Passes from `df` to `rdu`, one module each, and the pipeline that names them."""
