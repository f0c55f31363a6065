"""Hugging Face `config.json` files of eight public models, shipped with dfdsl for `dfdsl import-hf`
and `dfdsl init` (README.md in this folder says where each comes from and how it was written)."""
