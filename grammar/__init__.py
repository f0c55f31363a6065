"""The bundled grammar of the .dfl language (dfl.lark)."""
