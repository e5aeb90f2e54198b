"""Portable outputs: exported models with sidecars (``kvision export``), ``kvision predict``.

Sits above kvision.models, kvision.runs and kvision.insight (it reads images as ``kvision
viz`` does); the CLI registers its commands from :mod:`kvision.portable.commands`.
"""
