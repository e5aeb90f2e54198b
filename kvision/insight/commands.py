"""``kvision viz``: insight pictures for a finished run directory or a saved .keras model.

Only argparse is imported here so that ``kvision --help`` stays fast; the work happens in
:mod:`kvision.insight.viz`, imported by the handler.
"""

from __future__ import annotations

import argparse

VIZ_HELP = """\
Draw what a trained network learned, for a run directory or a .keras file.

  filters      first-conv filter grid of each model
  activations  channel-mean and strongest-channel maps of images (--image)
  cam          Grad-CAM / Grad-CAM++ heatmaps of images (--image)
  robustness   blur-robustness curves (a run's stored results, or measured on --data)
  retrieve     nearest images of a query (--query) in an image folder (--index)
  pending      the figures a stopped run left queued, drawn and recorded in the run

Images go to --out (default: the run's images/ folder, or ./viz-<model> for a .keras file).
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``viz`` command and its six subcommands to the CLI's subparsers."""
    viz = subparsers.add_parser(
        "viz",
        help="draw filters, activations, Grad-CAM, robustness, "
        "retrieval for a run or a .keras model",
        description=VIZ_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = viz.add_subparsers(dest="viz_command", metavar="WHAT", required=True)

    p = _common(kinds.add_parser("filters", help="first-conv filter grid"))
    p.add_argument("--max-filters", type=int, default=16, help="filters shown (default 16)")

    p = _common(kinds.add_parser("activations", help="activation maps of images"))
    _images(p)
    p.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="NAME",
        help="stage or layer (repeatable; default: v1, v2, v4 or the model's stages)",
    )
    p.add_argument("--top-channels", type=int, default=6, help="strongest channels shown")

    p = _common(kinds.add_parser("cam", help="Grad-CAM / Grad-CAM++ heatmaps of images"))
    _images(p)
    p.add_argument(
        "--layer",
        help="layer or stage to explain (default: the rectified output of the last conv block)",
    )
    p.add_argument("--method", choices=("gradcam", "gradcam++", "both"), default="both")
    p.add_argument(
        "--class-index",
        type=int,
        metavar="N",
        help="explain class N (default: the predicted class)",
    )
    p.add_argument("--class-names", help="comma-separated class names for a .keras model")

    p = _common(kinds.add_parser("robustness", help="accuracy against blur strength"))
    p.add_argument(
        "--data",
        metavar="DIR",
        help="measure on this image folder (one sub-folder per class, sorted names "
        "= class indices) instead of plotting a run's stored results",
    )
    p.add_argument("--sigmas", default="0,1,2,3,5", help="Gaussian sigmas (default 0,1,2,3,5)")
    p.add_argument(
        "--kinds",
        default="gaussian,defocus,motion,zoom",
        help="blur kinds at severities 1-5 (comma-separated; '' for none)",
    )
    p.add_argument("--max-images", type=int, default=500, help="images per measurement")

    p = _common(kinds.add_parser("retrieve", help="nearest neighbours of a query image"))
    p.add_argument(
        "--index",
        required=True,
        metavar="DIR",
        help="image folder to search (sub-folder names are the labels)",
    )
    p.add_argument(
        "--query", required=True, action="append", metavar="IMAGE", help="query image (repeatable)"
    )
    p.add_argument("--k", type=int, default=5, help="neighbours per query (default 5)")
    p.add_argument("--threshold", type=float, help="keep neighbours closer than this (0-2)")
    p.add_argument("--layer", help="feature layer (default: the pooled features)")
    p = kinds.add_parser(
        "pending", help="draw the figures a stopped run left queued (figure_jobs/)"
    )
    p.add_argument("target", metavar="RUN_DIR", help="a kvision run directory")
    p.set_defaults(trial=None)
    viz.set_defaults(handler=run_viz)
    return viz


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "target",
        metavar="RUN_DIR|MODEL.keras",
        help="a kvision run directory, a trial directory of one, or a saved .keras model",
    )
    p.add_argument("--trial", help="only this trial of a run directory (MODEL-ARM)")
    p.add_argument("--out", metavar="DIR", help="folder for the PNGs")
    return p


def _images(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image", action="append", required=True, metavar="PATH", help="an image file (repeatable)"
    )


def run_viz(args: argparse.Namespace) -> int:
    """Run one ``kvision viz`` subcommand; returns the exit code (KvisionError propagates).

    The subcommand's options reach the library as typed keywords: each flag's dest is the
    name of a keyword of the viz function (``--max-filters`` -> ``max_filters``).
    """
    import inspect

    from kvision.insight import viz
    from kvision.portable.target import ModelArg

    command = viz.COMMANDS[args.viz_command]
    takes = inspect.signature(command).parameters
    options = {k: v for k, v in vars(args).items() if k in takes and k != "source"}
    for path in command(ModelArg(args.target, args.trial), **options):
        print(path)
    return 0
