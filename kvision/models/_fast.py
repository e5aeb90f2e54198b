"""Torch fast paths behind Keras layers: fused BatchNorm and Local Response Normalization.

Keras builds BatchNorm from ``ops.moments`` plus element-wise ops, which on the torch backend
is a dozen small kernels per layer and step where ``torch.nn.functional.batch_norm`` is one
fused kernel (forward and backward). This module is the one place kvision calls torch for
that: every function here is used only when ``keras.backend.backend() == "torch"`` and the
layer's keras.ops implementation stays the fallback for every other case (other backends,
masks, mixed precision, renorm, synchronized BN). Numerics follow Keras exactly, including
the biased batch variance in the moving-variance update (PyTorch itself uses the unbiased
one), so a model trains and saves the same on either path.
"""

from __future__ import annotations

import keras

# Set to False to force the keras.ops fallback (tests compare both paths on one machine).
ENABLED = True


def torch_active() -> bool:
    """Whether the fast paths may run: torch backend and not switched off."""
    return ENABLED and keras.backend.backend() == "torch"


def local_response_norm(inputs, *, size: int, alpha: float, beta: float, k: float):
    """PyTorch's LRN on a channels-last tensor, as one fused torch call.

    The channel axis is moved to position 1 as a view (no copy): a contiguous NHWC tensor
    viewed as NCHW is torch's channels_last memory format, which its kernels accept as is.
    """
    import torch.nn.functional as F

    nchw = inputs.movedim(-1, 1)
    return F.local_response_norm(nchw, size, alpha=alpha, beta=beta, k=k).movedim(1, -1)


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
        x = inputs.movedim(axis, 1)  # a view; see local_response_norm
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

        torch updates copies of the moving statistics in place with weight ``1 - momentum``,
        as Keras does, but mixes in the unbiased batch variance; rescaling the batch's share
        by (n - 1) / n gives Keras' biased one without another pass over the activations.
        """
        keep = self.momentum
        mean = self.moving_mean.value.detach().clone()
        variance_before = self.moving_variance.value.detach()
        variance = variance_before.clone()
        outputs = F.batch_norm(x, mean, variance, gamma, beta, training=True,
                               momentum=1.0 - keep, eps=self.epsilon)
        count = x.numel() // x.shape[1]
        batch_share = (variance - keep * variance_before) * ((count - 1) / count)
        self.moving_mean.assign(mean)
        self.moving_variance.assign(keep * variance_before + batch_share)
        return outputs

    def _fast_ok(self, inputs, mask) -> bool:
        return (torch_active() and mask is None and not self.renorm
                and not self.synchronized and str(inputs.dtype) == "torch.float32"
                and self.compute_dtype == "float32"
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


def _spatial_fast_ok(layer, inputs) -> bool:
    return (torch_active() and layer.data_format == "channels_last" and inputs.ndim == 4
            and str(inputs.dtype) == "torch.float32" and layer.compute_dtype == "float32")


@keras.saving.register_keras_serializable("kvision")
class Conv2D(keras.layers.Conv2D):
    """Keras Conv2D whose torch-backend call is one ``F.conv2d`` on NHWC memory, bias fused.

    Weights, config and results are the Keras layer's; other cases (groups, "same" padding
    with strides, quantized kernels, other backends) take Keras' own call.
    """

    def call(self, inputs):
        if not self._fast_ok(inputs):
            return super().call(inputs)
        import torch.nn.functional as F

        kernel = self.kernel.value.permute(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        bias = self.bias.value if self.use_bias else None
        outputs = F.conv2d(_nchw_view(inputs), kernel, bias, stride=self.strides,
                           padding=self.padding, dilation=self.dilation_rate)
        outputs = _nhwc(outputs)
        return self.activation(outputs) if self.activation is not None else outputs

    def _fast_ok(self, inputs) -> bool:
        same_ok = self.padding == "valid" or (
            max(self.strides) == 1 and all(k % 2 for k in self.kernel_size))
        return (_spatial_fast_ok(self, inputs) and self.groups == 1 and same_ok
                and getattr(self, "quantization_mode", None) is None
                and not getattr(self, "lora_enabled", False))


@keras.saving.register_keras_serializable("kvision")
class MaxPooling2D(keras.layers.MaxPooling2D):
    """Keras MaxPooling2D whose torch-backend call is ``F.max_pool2d`` on NHWC memory."""

    def call(self, inputs):
        if self.padding != "valid" or not _spatial_fast_ok(self, inputs):
            return super().call(inputs)
        import torch.nn.functional as F

        return _nhwc(F.max_pool2d(_nchw_view(inputs), self.pool_size, self.strides))
