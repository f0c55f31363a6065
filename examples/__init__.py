"""The example models, shipped as package data so that `dfdsl validate` and users find them installed."""
