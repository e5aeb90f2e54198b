"""One-torch-call forms of stock Keras layers on NHWC memory, and kernels in torch's layout.

Each ``*_call(layer, inputs, ...)`` computes what the stock layer's ``call`` computes, or
returns None when its fast form does not apply (other dtypes, data formats, quantized or
LoRA kernels, groups, ...), and the caller then takes the layer's own Keras call.
:mod:`.graph` picks them by layer type (:data:`FAST_CALLS`). Kernels keep Keras' shapes,
names and values; only their torch memory order is torch's (:func:`store_in_torch_layout`).
"""

from __future__ import annotations

import keras

from kvision.models import _fast


def _nchw_view(inputs):
    """NHWC -> NCHW as a view, no copy: torch reads it as its channels_last memory format.

    Keras' torch backend instead copies every conv/pool input to contiguous NCHW and back;
    those copies (and their gradients) were the largest cost left after fused BatchNorm.
    """
    return inputs.permute(0, 3, 1, 2)


def _nhwc(outputs):
    """Back to NHWC; a free view, as torch keeps channels_last memory through conv and pool."""
    return outputs.permute(0, 2, 3, 1)


def wrapper_adds_nothing(layer) -> bool:
    """Whether ``Layer.__call__`` would do nothing but call: no activity regulariser's loss to
    record, no cast for a policy other than float32. Then skipping it is exact."""
    return layer.activity_regularizer is None and layer.dtype_policy.name == "float32"


def _float32(layer, inputs) -> bool:
    return str(inputs.dtype) == "torch.float32" and layer.compute_dtype == "float32"


def _spatial_ok(layer, inputs) -> bool:
    return layer.data_format == "channels_last" and inputs.ndim == 4 and _float32(layer, inputs)


def local_response_norm(inputs, *, size: int, alpha: float, beta: float, k: float):
    """PyTorch's LRN on an NHWC tensor, as one fused torch call on its memory (no copy)."""
    import torch.nn.functional as F

    return _nhwc(F.local_response_norm(_nchw_view(inputs), size, alpha=alpha, beta=beta, k=k))


def batch_norm_call(layer, inputs, *, training=None, mask=None, **_):
    """Keras BatchNormalization as ``F.batch_norm`` (one kernel), Keras' moving averages."""
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    if not (
        mask is None
        and not layer.renorm
        and not layer.synchronized
        and not in_stateless_scope()
        and _float32(layer, inputs)
        # torch refuses one value per channel in training; Keras gives variance 0.
        and inputs.numel() > inputs.shape[layer.axis]
    ):
        return None
    import torch.nn.functional as F

    axis = layer.axis if layer.axis >= 0 else layer.axis + len(inputs.shape)
    x = inputs.movedim(axis, 1)  # a view; see _nchw_view
    gamma = layer.gamma.value if layer.scale else None
    beta = layer.beta.value if layer.center else None
    if training and layer.trainable:
        outputs = _train_and_update(layer, F, x, gamma, beta)
    else:
        outputs = F.batch_norm(
            x,
            layer.moving_mean.value,
            layer.moving_variance.value,
            gamma,
            beta,
            training=False,
            eps=layer.epsilon,
        )
    return outputs.movedim(1, axis)


def _train_and_update(layer, F, x, gamma, beta):
    """Batch statistics and Keras' moving-average update from the same fused kernel.

    torch updates the moving mean in place (as Keras' ``assign`` does) with weight
    ``1 - momentum``, as Keras does. Its variance update mixes in the unbiased batch
    variance, so it updates a copy, v' = m v + (1 - m) u; Keras' biased update is then
    m (1 - c) v + c v' with c = (n - 1) / n, without another pass over the activations.
    """
    import torch

    variance = layer.moving_variance.value
    updated = variance.detach().clone()  # autograd saves it: never changed again
    outputs = F.batch_norm(
        x,
        layer.moving_mean.value,
        updated,
        gamma,
        beta,
        training=True,
        momentum=1.0 - layer.momentum,
        eps=layer.epsilon,
    )
    c = 1.0 - x.shape[1] / x.numel()  # (n - 1) / n for n values per channel
    with torch.no_grad():
        variance.mul_(layer.momentum * (1.0 - c)).add_(updated, alpha=c)
    return outputs


def _plain_kernel(layer) -> bool:
    """A built float kernel used as it is (``layer.kernel`` is then the variable itself)."""
    return (
        layer.built
        and not getattr(layer, "quantization_mode", None)
        and not getattr(layer, "lora_enabled", False)
    )


def conv_call(layer, inputs, *, pads=None, nchw=False, **_):
    """Keras Conv2D as one ``F.conv2d`` on NHWC memory, bias fused.

    ``pads``: a folded ZeroPadding2D's symmetric (rows, cols), for a "valid" conv. ``nchw``:
    the kernel is kept for torch's contiguous NCHW layout (small maps, see
    :func:`store_in_torch_layout`), so the input is made contiguous NCHW too.
    """
    same_ok = layer.padding == "valid" or (
        not pads and max(layer.strides) == 1 and all(k % 2 for k in layer.kernel_size)
    )
    if not (_spatial_ok(layer, inputs) and layer.groups == 1 and same_ok and _plain_kernel(layer)):
        return None
    import torch.nn.functional as F

    kernel = layer.kernel.value.permute(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    bias = layer.bias.value if layer.use_bias else None
    x = _nchw_view(inputs)
    if nchw:
        x = x.contiguous()  # a copy of a small map, or none if already NCHW
    outputs = F.conv2d(
        x,
        kernel,
        bias,
        stride=layer.strides,
        padding=pads or layer.padding,
        dilation=layer.dilation_rate,
    )
    outputs = _nhwc(outputs)
    return layer.activation(outputs) if layer.activation is not None else outputs


def max_pool_call(layer, inputs, *, pads=None, **_):
    """Keras MaxPooling2D ("valid") as ``F.max_pool2d`` on NHWC memory.

    ``pads`` pads with -inf as torch does; :mod:`.graph` folds a ZeroPadding2D here only
    where its input is a ReLU's (non-negative), so zero and -inf padding give the same max.
    """
    if layer.padding != "valid" or not _spatial_ok(layer, inputs):
        return None
    import torch.nn.functional as F

    return _nhwc(
        F.max_pool2d(_nchw_view(inputs), layer.pool_size, layer.strides, padding=pads or 0)
    )


def dense_call(layer, inputs, **_):
    """Keras Dense as one ``F.linear`` (GEMM with the bias fused), the kernel's memory (out, in)."""
    if not (_float32(layer, inputs) and _plain_kernel(layer)):
        return None
    import torch.nn.functional as F

    bias = layer.bias.value if layer.bias is not None else None
    outputs = F.linear(inputs, layer.kernel.value.t(), bias)
    return layer.activation(outputs) if layer.activation is not None else outputs


def adaptive_avg_pool_call(layer, inputs, **_):
    """Keras AdaptiveAveragePooling2D as torch's (the same bins) on channels_last memory."""
    if not _spatial_ok(layer, inputs):
        return None
    import torch.nn.functional as F

    return _nhwc(F.adaptive_avg_pool2d(_nchw_view(inputs), layer.output_size))


def rescaling_call(layer, inputs, **_):
    """Keras Rescaling as one multiply and an in-place add: Keras' ``x * scale + offset`` in
    float32, the same operations in the same order, with one new tensor instead of two.
    (The model's input layer has already cast the uint8 images to float32.)
    """
    if not _float32(layer, inputs):
        return None
    import torch

    scale = torch.as_tensor(layer.scale, dtype=torch.float32, device=inputs.device)
    if scale.ndim and keras.config.image_data_format() == "channels_first":
        return None  # Keras reshapes per-channel factors there; its own call does it
    offset = torch.as_tensor(layer.offset, dtype=torch.float32, device=inputs.device)
    return torch.mul(inputs, scale).add_(offset)


def relu_call(layer, inputs, *, in_place=False, **_):
    """A plain Keras ReLU layer (no slope, threshold or cap) as ``torch.relu``, which is what
    Keras' own call reaches after its symbolic-tensor and conversion checks. ``in_place``
    (the graph's plan found that nothing else reads ``inputs``): with no gradient recorded,
    ``torch.relu_`` on them, the same values without a new tensor to fill."""
    if not (
        _float32(layer, inputs)
        and layer.negative_slope == 0
        and layer.threshold == 0
        and layer.max_value is None
    ):
        return None
    import torch

    if in_place and not torch.is_grad_enabled():
        return torch.relu_(inputs)
    return torch.relu(inputs)


def flatten_call(layer, inputs, **_):
    """Keras Flatten of a channels_last tensor: the same reshape, without Keras' op wrapper."""
    if layer.data_format != "channels_last" or not _float32(layer, inputs):
        return None
    return inputs.reshape(inputs.shape[0], -1)


#: Stock layer type -> its fast form (looked up along the layer class's MRO).
FAST_CALLS = {
    keras.layers.Rescaling: rescaling_call,
    keras.layers.ReLU: relu_call,
    keras.layers.Flatten: flatten_call,
    keras.layers.Conv2D: conv_call,
    keras.layers.Dense: dense_call,
    keras.layers.BatchNormalization: batch_norm_call,
    keras.layers.MaxPooling2D: max_pool_call,
    keras.layers.AdaptiveAveragePooling2D: adaptive_avg_pool_call,
}

# Input maps of up to this many cells (rows x cols) run faster on the CPU in torch's
# contiguous NCHW layout: oneDNN's channels_last backward reorders every weight gradient,
# which for ResNet-18's 512-channel convolutions on 2x2 maps (64x64 images) cost 4 ms of
# a 17 ms forward+backward. At 4x4 both layouts were even; at 3x3 NCHW was faster for 512
# channels but slower for AlexNet/2's 96-192 channels in inference, so 2x2 is the limit.
NCHW_MAX_CELLS = 4


def wants_nchw(layer) -> bool:
    """Whether a built Conv2D's fast call runs in NCHW: CPU kernel, input map <= 2x2 cells."""
    try:
        height, width = layer.input.shape[1:3]
    except (AttributeError, ValueError):  # not in one functional graph
        return False
    return bool(
        layer.data_format == "channels_last"
        and _plain_kernel(layer)
        and height
        and width
        and height * width <= NCHW_MAX_CELLS
        and layer.kernel.value.device.type == "cpu"
    )


def store_in_torch_layout(layer, nchw: bool = False) -> None:
    """Keep a stock Conv2D's or Dense's kernel in torch's memory order; shape and values kept.

    Keras lays out a conv kernel as (kh, kw, in, out) and a Dense kernel as (in, out); torch
    wants (out, kh, kw, in) memory for a conv on NHWC inputs ((out, in, kh, kw) for NCHW)
    and (out, in) for a linear layer. Only the torch strides of the variable's tensor change,
    so ``kernel.permute(...)`` is torch's weight as a view and its gradient arrives in the
    same layout. With Keras' memory order torch copied every conv kernel to its layout each
    forward pass and the gradient back each backward pass (10-15% of a ResNet-18 step on the
    CPU), and ran Dense layers as the slower non-transposed GEMM. The parameter object stays
    the same (``.data`` is swapped), so torch modules and optimizers that hold it see the
    change; name, config, ``get_weights`` and saving stay Keras'.
    """
    if not (_plain_kernel(layer) and _fast.torch_active()):
        return
    import torch

    value = layer.kernel.value
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return
    if isinstance(layer, keras.layers.Conv2D):
        memory_order = (3, 2, 0, 1) if nchw else (3, 0, 1, 2)
    else:
        memory_order = (1, 0)
    if value.ndim != len(memory_order):
        return
    inverse = sorted(range(len(memory_order)), key=memory_order.__getitem__)
    with torch.no_grad():
        value.data = value.detach().permute(*memory_order).contiguous().permute(*inverse)
