"""Keras layers whose torch-backend call is one torch kernel on NHWC memory.

Kernels keep Keras' shapes, names and values; only their torch memory order is torch's
(:func:`_store_in_torch_layout`). Each layer's Keras call is the fallback.
"""

from __future__ import annotations

import keras

from kvision.models import _fast


def local_response_norm(inputs, *, size: int, alpha: float, beta: float, k: float):
    """PyTorch's LRN on an NHWC tensor, as one fused torch call on its memory (no copy)."""
    import torch.nn.functional as F

    return _nhwc(F.local_response_norm(_nchw_view(inputs), size, alpha=alpha, beta=beta, k=k))


@keras.saving.register_keras_serializable("kvision")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras BatchNormalization whose torch-backend call is ``F.batch_norm`` (one kernel).

    Same weights (gamma, beta, moving_mean, moving_variance), config and results as the Keras
    layer, so weight mapping, ``.keras`` saving and frozen (inference-mode) use are unchanged;
    the class name is kept so code that checks it keeps working.
    """

    def call(self, inputs, training=None, mask=None):
        if not self._fast_ok(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import torch.nn.functional as F

        axis = self.axis if self.axis >= 0 else self.axis + len(inputs.shape)
        x = inputs.movedim(axis, 1)  # a view; see _nchw_view
        gamma = self.gamma.value if self.scale else None
        beta = self.beta.value if self.center else None
        if training and self.trainable:
            outputs = self._train_and_update(F, x, gamma, beta)
        else:
            outputs = F.batch_norm(x, self.moving_mean.value, self.moving_variance.value,
                                   gamma, beta, training=False, eps=self.epsilon)
        return outputs.movedim(1, axis)

    def _train_and_update(self, F, x, gamma, beta):
        """Batch statistics and Keras' moving-average update from the same fused kernel.

        torch updates the moving mean in place (as Keras' ``assign`` does) with weight
        ``1 - momentum``, as Keras does. Its variance update mixes in the unbiased batch
        variance, so it updates a copy, v' = m v + (1 - m) u; Keras' biased update is then
        m (1 - c) v + c v' with c = (n - 1) / n, without another pass over the activations.
        """
        import torch

        variance = self.moving_variance.value
        updated = variance.detach().clone()  # autograd saves it: never changed again
        outputs = F.batch_norm(x, self.moving_mean.value, updated, gamma, beta,
                               training=True, momentum=1.0 - self.momentum, eps=self.epsilon)
        c = 1.0 - x.shape[1] / x.numel()  # (n - 1) / n for n values per channel
        with torch.no_grad():
            variance.mul_(self.momentum * (1.0 - c)).add_(updated, alpha=c)
        return outputs

    def _fast_ok(self, inputs, mask) -> bool:
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        return (_fast.torch_active() and mask is None and not self.renorm
                and not self.synchronized and not in_stateless_scope()
                and str(inputs.dtype) == "torch.float32" and self.compute_dtype == "float32"
                # torch refuses one value per channel in training; Keras gives variance 0.
                and inputs.numel() > inputs.shape[self.axis])


def _nchw_view(inputs):
    """NHWC -> NCHW as a view, no copy: torch reads it as its channels_last memory format.

    Keras' torch backend instead copies every conv/pool input to contiguous NCHW and back;
    those copies (and their gradients) were the largest cost left after fused BatchNorm.
    """
    return inputs.permute(0, 3, 1, 2)


def _nhwc(outputs):
    """Back to NHWC; a free view, as torch keeps channels_last memory through conv and pool."""
    return outputs.permute(0, 2, 3, 1)


def adaptive_avg_pool(inputs, output_size: tuple[int, int]):
    """PyTorch's adaptive average pooling of an NHWC tensor (channels_last memory, no copy)."""
    import torch.nn.functional as F

    return _nhwc(F.adaptive_avg_pool2d(_nchw_view(inputs), output_size))


def _store_in_torch_layout(layer, memory_order: tuple[int, ...]) -> None:
    """Keep a built layer's kernel in torch's weight memory order; shape and values unchanged.

    Keras lays out a conv kernel as (kh, kw, in, out) and a Dense kernel as (in, out); torch
    wants (out, kh, kw, in) memory for a conv on NHWC inputs and (out, in) for a linear layer.
    Only the torch strides of the variable change (``memory_order`` lists the Keras axes in
    memory order), so ``kernel.permute(...)`` is torch's weight as a view and its gradient
    arrives in the same layout. With Keras' memory order torch copied every conv kernel to
    its layout each forward pass and the gradient back each backward pass (10-15% of a
    ResNet-18 step on the CPU), and ran Dense layers as the slower non-transposed GEMM.
    Called from ``build``, before Keras registers the parameter with torch (``_post_build``),
    so torch.nn and the optimizer see this tensor; name, config and saving stay Keras'.
    """
    variable = getattr(layer, "_kernel", None)  # None: e.g. a quantized kernel
    if not _fast.torch_active() or variable is None:
        return
    import torch

    value = variable._value
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return
    inverse = sorted(range(len(memory_order)), key=memory_order.__getitem__)
    memory = value.detach().permute(*memory_order).contiguous()
    variable._value = torch.nn.Parameter(memory.permute(*inverse),
                                         requires_grad=value.requires_grad)


def _spatial_fast_ok(layer, inputs) -> bool:
    return (_fast.torch_active() and layer.data_format == "channels_last" and inputs.ndim == 4
            and str(inputs.dtype) == "torch.float32" and layer.compute_dtype == "float32")


def _explicit_padding(padding, *, layer: str) -> tuple[str, tuple[int, int] | None]:
    """Keras' padding string and PyTorch's symmetric (rows, cols) padding, from either form.

    An int or pair of ints is PyTorch's ``padding``: that many rows and columns added on
    each side. It is folded into the layer (one torch call, no padded copy of the input)
    where a separate ZeroPadding2D layer would copy every activation and its gradient.
    """
    if isinstance(padding, str):
        return padding, None
    pads = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if len(pads) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                                 for p in pads):
        raise ValueError(f"{layer} padding must be 'valid', 'same', a non-negative int or a "
                         f"pair of them (PyTorch's symmetric padding). Received: {padding!r}")
    # No padding is Keras' "valid": the config says so and the fallback pads nothing.
    return "valid", pads if any(pads) else None


class _ExplicitPadding:
    """Shape, config and Keras fallback of a layer padded PyTorch's way (explicit_padding)."""

    explicit_padding: tuple[int, int] | None = None

    def _spatial_axes(self) -> tuple[int, int]:
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def _padded(self, input_shape):
        """``input_shape`` after the explicit padding (unknown sizes stay unknown)."""
        shape = list(input_shape)
        for axis, pad in zip(self._spatial_axes(), self.explicit_padding or (0, 0), strict=True):
            shape[axis] = None if shape[axis] is None else shape[axis] + 2 * pad
        return tuple(shape)

    def _pad(self, inputs, value: float):
        """The Keras-ops form of the padding, for every case the torch call does not take."""
        if not self.explicit_padding:
            return inputs
        widths = [[0, 0]] * 4
        for axis, pad in zip(self._spatial_axes(), self.explicit_padding, strict=True):
            widths[axis] = [pad, pad]
        return keras.ops.pad(inputs, widths, constant_values=value)

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._padded(input_shape))

    def get_config(self):
        config = super().get_config()
        if self.explicit_padding:
            config["padding"] = list(self.explicit_padding)
        return config


@keras.saving.register_keras_serializable("kvision")
class Conv2D(_ExplicitPadding, keras.layers.Conv2D):
    """Keras Conv2D whose torch-backend call is one ``F.conv2d`` on NHWC memory, bias fused.

    ``padding`` also takes PyTorch's symmetric int padding (see :func:`_explicit_padding`).
    Weights, config and results are the Keras layer's; other cases (groups, "same" padding
    with strides, quantized kernels, other backends) take Keras' own call.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", **kwargs):
        keras_padding, pads = _explicit_padding(padding, layer="Conv2D")
        super().__init__(filters, kernel_size, strides=strides, padding=keras_padding, **kwargs)
        self.explicit_padding = pads

    # Input maps of up to this many cells (rows x cols) run faster on the CPU in torch's
    # contiguous NCHW layout: oneDNN's channels_last backward reorders every weight gradient,
    # which for ResNet-18's 512-channel convolutions on 2x2 maps (64x64 images) cost 4 ms of
    # a 17 ms forward+backward. At 4x4 both layouts were even; at 3x3 NCHW was faster for 512
    # channels but slower for AlexNet/2's 96-192 channels in inference, so 2x2 is the limit.
    NCHW_MAX_CELLS = 4
    _nchw = False  # set by build: this layer's fast call runs in NCHW

    def build(self, input_shape):
        super().build(input_shape)
        height, width = input_shape[1:3] if self.data_format == "channels_last" else (None, None)
        kernel = getattr(self, "_kernel", None)  # None: e.g. a quantized kernel
        self._nchw = bool(_fast.torch_active() and kernel is not None and height and width
                          and height * width <= self.NCHW_MAX_CELLS
                          and kernel.value.device.type == "cpu")
        # (out, in, kh, kw) for NCHW inputs, else (out, kh, kw, in): torch's channels_last
        _store_in_torch_layout(self, (3, 2, 0, 1) if self._nchw else (3, 0, 1, 2))

    def call(self, inputs):
        if not self._fast_ok(inputs):
            return super().call(self._pad(inputs, 0.0))
        import torch.nn.functional as F

        kernel = self.kernel.value.permute(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        bias = self.bias.value if self.use_bias else None
        x = _nchw_view(inputs)
        if self._nchw:
            x = x.contiguous()  # a copy of a small map, or none if already NCHW
        outputs = F.conv2d(x, kernel, bias, stride=self.strides,
                           padding=self.explicit_padding or self.padding,
                           dilation=self.dilation_rate)
        outputs = _nhwc(outputs)
        return self.activation(outputs) if self.activation is not None else outputs

    def _fast_ok(self, inputs) -> bool:
        same_ok = self.padding == "valid" or (
            max(self.strides) == 1 and all(k % 2 for k in self.kernel_size))
        return (_spatial_fast_ok(self, inputs) and self.groups == 1 and same_ok
                and getattr(self, "quantization_mode", None) is None
                and not getattr(self, "lora_enabled", False))


@keras.saving.register_keras_serializable("kvision")
class MaxPooling2D(_ExplicitPadding, keras.layers.MaxPooling2D):
    """Keras MaxPooling2D whose torch-backend call is ``F.max_pool2d`` on NHWC memory.

    ``padding`` also takes PyTorch's int padding, which pads with -inf as torch does (so a
    padded cell never wins the max); at most half the pool size, torch's limit.
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        keras_padding, pads = _explicit_padding(padding, layer="MaxPooling2D")
        super().__init__(pool_size, strides=strides, padding=keras_padding, **kwargs)
        if pads and any(2 * p > k for p, k in zip(pads, self.pool_size, strict=True)):
            raise ValueError(f"MaxPooling2D padding {padding!r} is more than half the pool "
                             f"size {self.pool_size}.")
        self.explicit_padding = pads

    def call(self, inputs):
        if self.padding != "valid" or not _spatial_fast_ok(self, inputs):
            return super().call(self._pad(inputs, float("-inf")))
        import torch.nn.functional as F

        return _nhwc(F.max_pool2d(_nchw_view(inputs), self.pool_size, self.strides,
                                  padding=self.explicit_padding or 0))


@keras.saving.register_keras_serializable("kvision")
class Dense(keras.layers.Dense):
    """Keras Dense whose torch-backend call is one ``F.linear`` (GEMM with the bias fused).

    The kernel keeps Keras' (in, out) shape with torch's (out, in) memory (see
    :func:`_store_in_torch_layout`), so ``kernel.t()`` is torch's weight as a view. Other
    cases (LoRA, quantized kernels, other dtypes and backends) take Keras' own call.
    """

    def build(self, input_shape):
        super().build(input_shape)
        _store_in_torch_layout(self, (1, 0))  # (out, in)

    def call(self, inputs, training=None):
        if not (_fast.torch_active() and self._fast_kernel_ok()
                and str(inputs.dtype) == "torch.float32" and self.compute_dtype == "float32"):
            return super().call(inputs, training=training)
        import torch.nn.functional as F

        bias = self.bias.value if self.bias is not None else None
        outputs = F.linear(inputs, self.kernel.value.t(), bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def _fast_kernel_ok(self) -> bool:
        return not self.quantization_mode and not self.lora_enabled


