"""The `df` and `rdu` dialects and the shape rules they share."""
