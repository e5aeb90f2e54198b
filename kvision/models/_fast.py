"""Torch fast paths behind Keras layers and Keras' Adam on the torch backend.

Keras' own layers on the torch backend run many small kernels where torch has one fused
call (BatchNorm from ``ops.moments`` plus element-wise ops; Adam as ten element-wise passes
with temporaries) and copy tensors between Keras' and torch's layouts (NHWC activations,
(kh, kw, in, out) conv and (in, out) Dense kernels). This module is the one place kvision
calls torch for that: every function here is used only when ``keras.backend.backend() ==
"torch"``, and the layer's (or optimizer's) Keras implementation stays the fallback for
every other case (other backends, masks, mixed precision, renorm, synchronized BN, LoRA,
quantization, AMSGrad). Numerics follow Keras, including the biased batch variance in the
moving-variance update and Adam's epsilon placement, so a model trains and saves the same
on either path (tests/test_speed_equivalence.py). Kernels keep Keras' shapes, names and
values; only their torch memory order is torch's (:func:`_store_in_torch_layout`).
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
    if not torch_active() or variable is None:
        return
    import torch

    value = variable._value
    if not isinstance(value, torch.Tensor) or value.device.type == "meta":
        return
    inverse = sorted(range(len(memory_order)), key=memory_order.__getitem__)
    memory = value.detach().permute(*memory_order).contiguous()
    variable._value = torch.nn.Parameter(memory.permute(*inverse),
                                         requires_grad=value.requires_grad)


def _match_layout(slot, like):
    """An optimizer slot variable's tensor in the memory order of its parameter (``like``).

    Keras creates slots contiguous; the fused kernel walks memory linearly, so a slot of a
    kernel kept in torch's layout (see :func:`_store_in_torch_layout`) is re-laid out once.
    """
    import torch

    value = slot._value
    if value.stride() != like.stride():
        relaid = torch.empty_strided(like.shape, like.stride(), dtype=value.dtype,
                                     device=value.device).copy_(value)
        slot._value = value = torch.nn.Parameter(relaid, requires_grad=False)
    return value


def _spatial_fast_ok(layer, inputs) -> bool:
    return (torch_active() and layer.data_format == "channels_last" and inputs.ndim == 4
            and str(inputs.dtype) == "torch.float32" and layer.compute_dtype == "float32")


@keras.saving.register_keras_serializable("kvision")
class Conv2D(keras.layers.Conv2D):
    """Keras Conv2D whose torch-backend call is one ``F.conv2d`` on NHWC memory, bias fused.

    Weights, config and results are the Keras layer's; other cases (groups, "same" padding
    with strides, quantized kernels, other backends) take Keras' own call.
    """

    def build(self, input_shape):
        super().build(input_shape)
        _store_in_torch_layout(self, (3, 0, 1, 2))  # (out, kh, kw, in)

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
        if not (torch_active() and self._fast_kernel_ok()
                and str(inputs.dtype) == "torch.float32" and self.compute_dtype == "float32"):
            return super().call(inputs, training=training)
        import torch.nn.functional as F

        bias = self.bias.value if self.bias is not None else None
        outputs = F.linear(inputs, self.kernel.value.t(), bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def _fast_kernel_ok(self) -> bool:
        return not self.quantization_mode and not self.lora_enabled


def _fused_adam_ok(optimizer, grads, variables) -> bool:
    """The fused kernel is used for plain float32 Adam/AdamW on the CPU (where it was measured)."""
    tensors = [*grads, *variables]
    return (torch_active() and not optimizer.amsgrad and bool(variables)
            and all(isinstance(b, float) for b in (optimizer.beta_1, optimizer.beta_2))
            and all(t.dtype == tensors[0].dtype and t.device.type == "cpu" for t in tensors)
            # the kernel walks memory linearly: each gradient in its parameter's layout
            and all(g.stride() == v.stride() for g, v in zip(grads, variables, strict=True))
            and all(_memory_order(v).is_contiguous() for v in variables)
            and str(tensors[0].dtype) == "torch.float32")


def _memory_order(tensor):
    """The tensor with its axes permuted into memory order (contiguous when it is dense)."""
    return tensor.permute(sorted(range(tensor.ndim), key=lambda axis: -tensor.stride(axis)))


def _flat(tensor):
    """A 1-d view of a dense tensor's memory, whatever its axis order.

    The fused kernel makes non-contiguous tensors contiguous (a copy there and back); a
    kernel kept in torch's layout is dense, so its memory is handed over as it lies. The
    parameter, gradient and both slots share one layout, so elements still line up.
    """
    return _memory_order(tensor).view(-1)


def _fused_adam_step(optimizer, grads, variables, values, learning_rate) -> None:
    """Keras' Adam update as torch's fused kernel: one pass over each parameter, no temporaries.

    Keras computes ``var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``; torch's
    kernel computes ``var -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')``, the
    same update when ``eps' = eps / sqrt(1 - b2^t)``. Keras' own step is ten element-wise
    passes and five full-size temporaries per step, which dominate small CNNs with a big head.
    """
    import torch

    index = optimizer._get_variable_index  # keyed by the Keras variable
    step = float(optimizer.iterations.value) + 1.0  # a CPU scalar: no device sync
    eps = optimizer.epsilon / (1.0 - optimizer.beta_2 ** step) ** 0.5
    pairs = list(zip(variables, values, strict=True))
    momentums = [_match_layout(optimizer._momentums[index(v)], p) for v, p in pairs]
    velocities = [_match_layout(optimizer._velocities[index(v)], p) for v, p in pairs]
    torch._fused_adam_(
        [_flat(t) for t in values], [_flat(t) for t in grads],
        [_flat(t) for t in momentums], [_flat(t) for t in velocities],
        [], [torch.tensor(step)] * len(variables),
        lr=float(learning_rate), beta1=optimizer.beta_1, beta2=optimizer.beta_2,
        weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)


def fuse_adam(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """``optimizer`` with its update step run by torch's fused kernel, if it is a torch Adam(W).

    Only this instance changes (its ``_parallel_update_step``), so optimizers users build
    themselves stay Keras' own, and the class, config, saved ``.keras`` files, optimizer
    state, checkpoints and resume are those of a plain Keras Adam. Weight decay, clipping,
    EMA and the iteration count stay Keras'; whatever the fused kernel does not cover
    (AMSGrad, other dtypes or devices, other backends) takes Keras' own update, step by step.
    """
    if keras.backend.backend() != "torch":
        return optimizer
    import types

    from keras.src.backend.torch.optimizers import torch_adam

    if not isinstance(optimizer, torch_adam.Adam):  # AdamW is a subclass
        return optimizer
    keras_step = optimizer._parallel_update_step

    def update_step(self, grads, variables, learning_rate):
        values = [v.value for v in variables]
        if _fused_adam_ok(self, grads, values):
            _fused_adam_step(self, grads, variables, values, learning_rate)
            return None
        return keras_step(grads, variables, learning_rate)

    optimizer._parallel_update_step = types.MethodType(update_step, optimizer)
    return optimizer
