"""The bundled standard library of layers, importable from .dfl files as `std.NAME`."""
