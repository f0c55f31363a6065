"""The SN40L timing interpreter and the hardware descriptions it reads."""
