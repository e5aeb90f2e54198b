"""Portable outputs: exported models with sidecars (``kvision export``), ``kvision predict``.

Sits above kvision.models, kvision.runs and kvision.data (image files), below
kvision.insight, whose ``kvision viz`` reads the sidecar's class names from here; the CLI registers its commands from :mod:`kvision.portable.commands`.
"""
