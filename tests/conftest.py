"""Hypothesis profiles: reproducible in CI, exploring on request.

- ``ci`` (the default): derandomized, so a given commit draws the same examples on every
  machine and a red run always means a real regression, never an unlucky seed.
- ``explore`` (``make explore``, or ``HYPOTHESIS_PROFILE=explore pytest tests/unit``): random
  seeds and many more examples, to find what ``ci`` does not draw. Every failure it finds goes
  back beside its property as an explicit ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=int(os.environ.get("TALKSYNC_EXPLORE_EXAMPLES", "2000")),
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
