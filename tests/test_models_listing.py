"""`kvision models` text: the architecture list and a layer table."""

from __future__ import annotations

import kvision  # noqa: F401  (selects the torch backend before keras is imported)
from kvision.models import format_layer_table, format_model_list
from kvision.models.catalog import model_names


def test_model_list_names_every_architecture_with_count_and_input():
    text = format_model_list()
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert set(lines) == set(model_names())
    assert "61,100,840" in lines["alexnet"] and "224x224x3" in lines["alexnet"]
    assert "269,722" in lines["resnet20"] and "32x32x3" in lines["resnet20"]
    assert "28x28x1" in lines["lenet"]


def test_layer_table_of_alexnet_seed():
    text = format_layer_table("alexnet_seed", downscale=2)
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}
    assert rows["retina_conv"][1:] == ["retina", "Conv2D", "63x63x32", "11,648"]
    assert rows["avgpool"][1:4] == ["-", "AdaptiveAveragePooling2D", "6x6x128"]
    assert "11,114,018 trainable parameters" in text
    assert "first conv: retina_conv, last conv: v4_conv" in text
