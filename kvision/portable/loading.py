"""Loading a shared ``.keras`` file in safe mode, with one clear paragraph when it fails."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from kvision.errors import KvisionError

if TYPE_CHECKING:
    import keras


def load_checked(path: str | Path) -> keras.Model:
    """``kvision.models.load_model`` (safe mode); Keras' refusals become a KvisionError, and
    so does a graph this backend cannot run (:func:`kvision.models.check_backend_limits`)."""
    from kvision.models import check_backend_limits, load_model

    p = Path(path)
    if not zipfile.is_zipfile(p):  # Keras says "File not found" for a file that is not a zip
        raise KvisionError(
            f"'{p}' is not a Keras model file: a .keras file is a zip archive "
            "(config.json + model.weights.h5) written by model.save()."
        )
    try:
        model = load_model(p)
    except ValueError as err:
        text = str(err)
        if "safe_mode" in text:
            raise KvisionError(
                f"'{p}' holds Python code (e.g. a Lambda layer) that Keras' safe mode refuses "
                "to load, and kvision always loads in safe mode so that opening a model never "
                f"runs code from it. Keras said: {text.split('. ')[0]}."
            ) from None
        raise KvisionError(f"Cannot load '{p}' as a Keras model: {text}") from None
    except (OSError, TypeError, KeyError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        # zlib.error / EOFError: a member damaged inside an intact zip (the weights)
        raise KvisionError(f"Cannot load '{p}' as a Keras model: {err}") from None
    check_backend_limits(model)
    return model
