"""dfdsl: a compiler toolkit for dataflow programs (LLM decode on the SambaNova SN40L)."""

__version__ = "0.1.0"
