"""The sibling of relative.py."""
