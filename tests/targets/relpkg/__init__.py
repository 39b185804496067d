"""A package whose module imports a sibling relatively: loaded alone by its path, it cannot."""
