"""Test-wide settings.

Under CI (the environment variable CI is set, as `.ci/run` runs) hypothesis draws its
examples from a fixed seed, so that a green build stays green: property tests explore new
examples on developers' machines, and CI replays a deterministic set.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
