"""Keras' Adam on the torch backend as torch's fused kernel (see :func:`fuse_adam`)."""

from __future__ import annotations

import contextlib

import keras

from kvision.models import _fast

#: Parameter sets up to this many elements take the fused step in ONE intra-op thread. The
#: kernel splits each tensor over torch's threads, and every split is a hand-off the other
#: thread must be scheduled for: VGG11/8's 22 tensors (544k elements) took 1-2 ms a step in
#: one thread and 60-570 ms in two on a 2-core machine shared with other jobs (load average
#: 20, interleaved), while one thread needs 0.65-0.75 ns an element (0.8 ms for 2^20), so a
#: second thread could save at most 0.4 ms here. Larger sets (AlexNet/2, ResNet-18: 11M)
#: keep every thread. The update is element-wise: the same bits whatever the split.
SINGLE_THREAD_ELEMENTS = 2**20


def _match_layout(slot, like):
    """An optimizer slot variable's tensor in the memory order of its parameter (``like``).

    Keras creates slots contiguous; the fused kernel walks memory linearly, so a slot of a
    kernel kept in torch's layout (see :func:`.layers.store_in_torch_layout`) is re-laid out
    once, in place (the variable keeps its tensor object).
    """
    import torch

    value = slot.value
    if value.stride() != like.stride():
        with torch.no_grad():
            value.data = torch.empty_strided(
                like.shape, like.stride(), dtype=value.dtype, device=value.device
            ).copy_(value)
    return value


def _fused_adam_ok(optimizer, grads, variables) -> bool:
    """The fused kernel is used for plain float32 Adam/AdamW on the CPU (where it was measured)."""
    tensors = [*grads, *variables]
    return (
        _fast.torch_active()
        and not optimizer.amsgrad
        and bool(variables)
        and optimizer.built  # its _momentums/_velocities lists (_fast.INTERNALS, checked)
        and all(isinstance(b, float) for b in (optimizer.beta_1, optimizer.beta_2))
        and all(t.dtype == tensors[0].dtype and t.device.type == "cpu" for t in tensors)
        # the kernel walks memory linearly: each gradient in its parameter's layout
        and all(g.stride() == v.stride() for g, v in zip(grads, variables, strict=True))
        and str(tensors[0].dtype) == "torch.float32"
    )


def _memory_axes(tensor) -> list[int]:
    """The tensor's axes from the largest stride to the smallest (its memory order)."""
    return sorted(range(tensor.ndim), key=lambda axis: -tensor.stride(axis))


class _FlatLayout:
    """1-d views of the parameters' and slots' memory, whatever their axis order.

    The fused kernel makes non-contiguous tensors contiguous (a copy there and back); a
    kernel kept in torch's layout is dense, so its memory is handed over as it lies. The
    parameter, gradient and both slots share one layout, so elements line up. Built once
    and reused while the same tensors are trained (working it out took ~2 ms a step for
    ResNet-18's 62 variables).
    """

    def __init__(self, optimizer, variables, values):
        index = optimizer._get_variable_index  # keyed by the Keras variable
        pairs = list(zip(variables, values, strict=True))
        momentums = [_match_layout(optimizer._momentums[index(v)], p) for v, p in pairs]
        velocities = [_match_layout(optimizer._velocities[index(v)], p) for v, p in pairs]
        self.axes = [_memory_axes(t) for t in values]
        self.dense = all(
            t.permute(a).is_contiguous() for t, a in zip(values, self.axes, strict=True)
        )
        self.values, self.momentums, self.velocities = (
            self.flat(tensors) if self.dense else [] for tensors in (values, momentums, velocities)
        )
        self.key = self.key_of(optimizer, values)
        self.numel = sum(t.numel() for t in values)

    @staticmethod
    def key_of(optimizer, values) -> tuple[int, ...]:
        slots = [s.value for s in (*optimizer._momentums, *optimizer._velocities)]
        return tuple(map(id, (*values, *slots)))

    def flat(self, tensors) -> list:
        return [t.permute(a).view(-1) for t, a in zip(tensors, self.axes, strict=True)]


@contextlib.contextmanager
def _threads_for(torch, numel: int):
    """One intra-op thread for a parameter set of at most :data:`SINGLE_THREAD_ELEMENTS`."""
    threads = torch.get_num_threads()
    single = threads > 1 and numel <= SINGLE_THREAD_ELEMENTS
    if single:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if single:
            torch.set_num_threads(threads)


def _fused_adam_step(optimizer, grads, layout: _FlatLayout, learning_rate) -> None:
    """Keras' Adam update as torch's fused kernel: one pass over each parameter, no temporaries.

    Keras computes ``var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``; torch's
    kernel computes ``var -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')``, the
    same update when ``eps' = eps / sqrt(1 - b2^t)``. Keras' own step is ten element-wise
    passes and five full-size temporaries per step, which dominate small CNNs with a big head.
    """
    import torch

    step = float(optimizer.iterations.value) + 1.0  # a CPU scalar: no device sync
    eps = optimizer.epsilon / (1.0 - optimizer.beta_2**step) ** 0.5
    with _threads_for(torch, layout.numel):
        torch._fused_adam_(
            layout.values,
            layout.flat(grads),
            layout.momentums,
            layout.velocities,
            [],
            [torch.tensor(step)] * len(grads),
            lr=float(learning_rate),
            beta1=optimizer.beta_1,
            beta2=optimizer.beta_2,
            weight_decay=0.0,
            eps=eps,
            amsgrad=False,
            maximize=False,
        )


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
    layout: _FlatLayout | None = None  # of the tensors last trained

    def update_step(self, grads, variables, learning_rate):
        nonlocal layout
        values = [v.value for v in variables]
        if _fused_adam_ok(self, grads, values):
            if layout is None or layout.key != _FlatLayout.key_of(self, values):
                layout = _FlatLayout(self, variables, values)
            if layout.dense:
                _fused_adam_step(self, grads, layout, learning_rate)
                return None
        return keras_step(grads, variables, learning_rate)

    optimizer._parallel_update_step = types.MethodType(update_step, optimizer)
    return optimizer
