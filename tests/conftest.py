"""Hypothesis profiles: the default one for `make test`, and "check" for `make check`.

`--hypothesis-profile=check` runs a tenth of the examples. A test that sets max_examples itself
scales it by the loaded profile (n * settings.default.max_examples // 100), so the profile reaches
it too.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("check", max_examples=10)
