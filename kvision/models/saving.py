"""Loading saved kvision models, including files written by kvision 0.1."""

from __future__ import annotations

from pathlib import Path

import keras

from kvision.errors import KvisionError
from kvision.models import layers as _layers  # noqa: F401  (registers LRN)
from kvision.models import legacy as _legacy  # noqa: F401  (0.1's kvision> layer classes)


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` model saved by kvision, with ``safe_mode=True`` (no pickled code).

    Files of kvision 0.1 (``kvision>Conv2D`` and the like) load too, through
    :mod:`kvision.models.legacy`. On the torch backend the model runs kvision's fast paths.
    """
    path = Path(path)
    if not path.is_file():
        raise KvisionError(
            f"Model file '{path}' does not exist. Expected a '.keras' file "
            f"such as runs/<run>/trials/<trial>/model.keras."
        )
    from kvision.models._fast import direct_graph

    return direct_graph(keras.saving.load_model(path, safe_mode=True))
