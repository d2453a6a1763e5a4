"""Backends: one module each. They are imported lazily by the registry."""
