"""Config primitives every layer may use: the spec error type and field validation.

Nothing here imports another jaxlab package, so algorithms, environments and memories can
validate their own settings without depending on the spec schema that composes them.
"""
