"""``kvision data``: light registration, and the report it prints for a folder."""

from __future__ import annotations

import argparse
import subprocess
import sys

import cv2
import numpy as np

from kvision.data.commands import register


def test_registering_imports_no_heavy_modules():
    code = (
        "import sys, kvision.data.commands, kvision.data; "
        "print(sorted(m for m in ('cv2', 'keras', 'torch', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_data_command_reports_counts_and_skipped_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KVISION_CACHE", str(tmp_path / "cache"))
    for cls in ("ant", "bee"):
        (tmp_path / "bugs" / cls).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(tmp_path / "bugs" / cls / f"{i}.png"), np.full((12, 12), i, np.uint8))
    (tmp_path / "bugs" / "bee" / "bad.png").write_bytes(b"not a png")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["data", f"folder:{tmp_path / 'bugs'}", "--image-size", "8", "8"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "2 classes, images 8x8x3" in out
    assert "split counts: train 8, val 2" in out
    assert "skipped files: 1\n  bee/bad.png: cannot decode" in out
