"""metrics.yaml's validation kept between processes (results/metrics_file.py through
config/validated.py): for any file, the same Metrics, warnings and errors as pydantic's."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qaflow.results.metrics import Metrics
from validations import three_ways

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 30),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "dB", "5%", "0.1", "x", "psnr", "-1"]),
)
ENTRY_KEYS = [
    "label",
    "short_label",
    "smaller_is_better",
    "target",
    "threshold",
    "scale",
    "suffix",
    "precision",
    "tolerance",
    "description",
    "lable",
    "plot_scale",
    "other",
]
ENTRY = st.one_of(st.none(), st.dictionaries(st.sampled_from(ENTRY_KEYS), SCALARS, max_size=4))
METRICS = st.fixed_dictionaries(
    {},
    optional={
        "available_metrics": st.one_of(
            st.dictionaries(st.sampled_from(["psnr", "loss", "time"]), ENTRY, max_size=3), SCALARS
        ),
        "default_metric": SCALARS,
        "main_metrics": st.one_of(st.lists(st.sampled_from(["psnr", "loss"]), max_size=2), SCALARS),
        "summary_metrics": st.lists(st.sampled_from(["psnr", "loss", 3]), max_size=2),
        "dashboard_metrics": st.lists(SCALARS, max_size=2),
        "mainmetrics": SCALARS,
        "extra": SCALARS,
    },
)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=METRICS)
def test_a_kept_metrics_validation_is_what_pydantic_gives(data, tmp_path, kept, monkeypatch):
    path = tmp_path / "metrics.yaml"
    path.write_text(yaml.safe_dump(data))

    def load() -> Any:
        return Metrics.load(path)

    off, cold, warm = three_ways(load, monkeypatch)
    assert cold == off
    assert warm == off
