"""kvision-tui: a Textual terminal UI for kvision (installed as ``kvision_tui``).

It reads run directories through ``kvision.runs``, validates recipes through
``kvision.recipe`` and starts ``kvision run`` as a detached subprocess; it never imports
Keras, torch or OpenCV.
"""
