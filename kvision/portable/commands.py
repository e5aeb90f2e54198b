"""``kvision export`` and ``kvision predict``: models that travel.

Only argparse is imported here so that ``kvision --help`` stays fast; the handlers import
:mod:`kvision.portable.export` / :mod:`kvision.portable.predict` (and Keras) when they run.
"""

from __future__ import annotations

import argparse
import sys

EXPORT_HELP = """\
Write a run's trained models as files to share: <trial>.keras (graph and weights, no
optimizer state, loads with keras.saving.load_model in safe mode) or <trial>.onnx, each
with a sidecar <file>.json holding class names, input shape, preprocessing, the conditions
it was trained on, final metrics and versions. A run still running exports the trials that
have finished.
"""

PREDICT_HELP = """\
Classify images with a model: a file kvision export wrote (.keras, .onnx or .pt2; class
names from its sidecar <file>.json; without one, classes are shown by index), a trial
directory, or a run
directory (--trial when it has several models). Images are converted to the model's
channels and resized to its input; folders are searched for image files.
"""


#: What ran the exported file when export checked it against Keras.
CHECKER = {".onnx": "onnxruntime", ".pt2": "torch.export"}


def register(subparsers) -> None:
    """Add ``export`` and ``predict`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "export",
        help="write a run's models as .keras or .onnx files with a JSON sidecar",
        description=EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run_dir", metavar="RUN", help="a kvision run directory, or a trial directory of one"
    )
    p.add_argument("--trial", help="export only this trial (default: every finished trial)")
    p.add_argument("--to", default=".", metavar="DIR", help="destination folder (default: .)")
    p.add_argument(
        "--format",
        default="keras",
        metavar="FORMAT",
        help="keras (default), onnx (needs pip install 'kvision[onnx]') or torch (a "
        "torch.export program, .pt2, loadable with torch.export.load)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="compare each exported file with the Keras model on the run's own test images "
        "under every evaluated condition: top-1 agreement and max |difference|",
    )
    p.set_defaults(handler=_export)

    p = subparsers.add_parser(
        "predict",
        help="classify images with a trained model",
        description=PREDICT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model", metavar="MODEL", help=".keras/.onnx/.pt2 file, trial directory or run directory"
    )
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER")
    p.add_argument("--trial", help="with a run directory: the trial whose model to use")
    p.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per image (3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_predict)


def _export(args: argparse.Namespace) -> int:
    from kvision.portable.export import export_run

    done, waiting = export_run(args.run_dir, trial=args.trial, to=args.to, fmt=args.format)
    for item in done:
        checked = (
            f"  ({CHECKER.get(item.model.suffix, 'file')} vs Keras: "
            f"max |diff| {item.max_abs_diff:.2e})"
            if item.max_abs_diff is not None
            else ""
        )
        print(f"{item.model}  + {item.sidecar.name}  ({item.seconds:.1f} s){checked}")
        if item.note:
            print(f"note: {item.trial}: {item.note}", file=sys.stderr)
    if waiting:
        print(f"not exported (no model yet): {', '.join(waiting)}", file=sys.stderr)
    if args.check and done:
        _check(args.run_dir, done)
    return 0


def _check(run_dir: str, done: list) -> None:
    """``--check``: every exported file against its trial's Keras model, on the test images."""
    from kvision.portable.check import check_rows, format_check, run_test_views
    from kvision.portable.target import ModelArg, resolve

    pointed = resolve(ModelArg(run_dir), reads=())
    views = run_test_views(pointed.run_dir)
    for item in done:
        rows = check_rows(pointed.models[item.trial], item.model, views)
        print(format_check(item.trial, item.model, rows))


def _predict(args: argparse.Namespace) -> int:
    from kvision.data.image_files import image_files
    from kvision.errors import printable
    from kvision.portable import predict as p
    from kvision.portable.target import ModelArg

    source = p.resolve_source(ModelArg(args.model, args.trial))
    files = image_files(args.images)  # before loading: a wrong path fails fast
    model = p.load(source)
    for note in source.notes:
        print(printable(note, one_line=False), file=sys.stderr)
    top = p.check_top(args.top, model.classes)
    results = p.predict(model, files, top)
    if args.json:  # JSON escapes control characters itself
        print(p.format_json(results, source))
    else:  # class names come from the sidecar, a file anyone may have written
        print(printable(p.format_table(results, source.sidecar), one_line=False))
    return 0
