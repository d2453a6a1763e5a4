"""Test support: the conformance suite every backend passes, and the blocking-facade adapter."""

from objstore.testing.conformance import SPECIAL_KEYS, StoreConformance, expected_failure
from objstore.testing.facade import FacadeAsAsync

__all__ = ["SPECIAL_KEYS", "FacadeAsAsync", "StoreConformance", "expected_failure"]
