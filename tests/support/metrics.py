"""Reading values out of a Prometheus text exposition."""

from __future__ import annotations

import re


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly `labels` (fails when it is missing)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? ([0-9.e+-]+)$"
        if labels
        else (rf"^{re.escape(name)} ([0-9.e+-]+)$")
    )
    found = re.search(pattern, text, re.M)
    assert found, f"{name} {labels} not in metrics"
    return float(found.group(1))
