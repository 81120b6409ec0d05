"""Fixtures of the e2e proofs."""

from site_support import site

__all__ = ["site"]
