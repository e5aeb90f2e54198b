"""Insight: what a network learned — filters, activations, Grad-CAM(++), curves,
classification reports, blur robustness and retrieval — as PNGs and JSON in a run directory.

The runner calls :mod:`kvision.insight.hooks`; ``kvision viz`` lives in
:mod:`kvision.insight.commands` (argparse only) and :mod:`kvision.insight.viz`. Importing this
package is cheap: Keras, OpenCV and matplotlib load with the submodules that need them.
"""
