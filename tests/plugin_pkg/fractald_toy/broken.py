"""A plug-in module that fails on import, for the error-path test."""

raise ImportError("toy plug-in deliberately broken")
