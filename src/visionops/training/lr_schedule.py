"""TAO's ``soft_start_annealing`` learning-rate schedule (DetectNet_v2 default), per optimizer step.

With progress ``p = step / total_steps`` (clamped to [0, 1])::

    t = p / soft_start                  if p < soft_start       (log-linear ramp up from min_lr)
    t = 1                               in between              (plateau at max_lr)
    t = (1 - p) / (1 - annealing)       if p > annealing        (log-linear ramp down to min_lr)
    lr = exp(log(min_lr) + t * (log(max_lr) - log(min_lr)))  =  min_lr * (max_lr / min_lr) ** t

``soft_start == 0`` starts on the plateau, ``annealing == 1`` never anneals (as TAO). TAO defaults:
min 5e-6, max 5e-4, soft_start 0.1, annealing 0.7 (``default_spec.txt``).

Use with :class:`torch.optim.lr_scheduler.LambdaLR`, stepping the scheduler every optimizer step::

    opt = torch.optim.Adam(params, lr=max_lr)  # the lambda is relative to this base lr
    sched = LambdaLR(opt, soft_start_annealing_lambda(total_steps, min_lr, max_lr))
"""

from __future__ import annotations

import math
from collections.abc import Callable


def _validate(total_steps: int, min_lr: float, max_lr: float, soft_start: float, annealing: float) -> None:
    if isinstance(total_steps, bool) or int(total_steps) != total_steps or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if not (math.isfinite(min_lr) and math.isfinite(max_lr) and 0.0 < min_lr <= max_lr):
        raise ValueError(f"need 0 < min_lr <= max_lr (both finite), got min_lr={min_lr}, max_lr={max_lr}")
    if not 0.0 <= soft_start <= annealing <= 1.0:
        raise ValueError(f"need 0 <= soft_start <= annealing <= 1, got soft_start={soft_start}, annealing={annealing}")


def _lr(step: int, total_steps: int, min_lr: float, max_lr: float, soft_start: float, annealing: float) -> float:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    # Clamp past the end: LambdaLR is evaluated once more after the last optimizer step.
    p = min(step / total_steps, 1.0)
    if p < soft_start:  # soft_start > 0 here
        t = p / soft_start
    elif p > annealing:  # annealing < 1 here
        t = (1.0 - p) / (1.0 - annealing)
    else:
        t = 1.0
    return math.exp(math.log(min_lr) + t * (math.log(max_lr) - math.log(min_lr)))


def soft_start_annealing(step: int, total_steps: int, min_lr: float, max_lr: float, soft_start: float = 0.1,
                         annealing: float = 0.7) -> float:
    """Learning rate at optimizer step ``step`` (0-based) of ``total_steps``.

    Args:
        step: global optimizer step, >= 0; steps past ``total_steps`` get the final ``min_lr``.
        total_steps: steps of the whole run (epochs * steps per epoch), >= 1.
        min_lr, max_lr: learning rates at the ends and on the plateau, ``0 < min_lr <= max_lr``.
        soft_start: progress fraction where the ramp up reaches ``max_lr``.
        annealing: progress fraction where the ramp down starts; ``0 <= soft_start <= annealing <= 1``.

    Raises:
        ValueError: on invalid arguments.
    """
    _validate(total_steps, min_lr, max_lr, soft_start, annealing)
    return _lr(step, total_steps, min_lr, max_lr, soft_start, annealing)


def soft_start_annealing_lambda(total_steps: int, min_lr: float, max_lr: float, soft_start: float = 0.1,
                                annealing: float = 0.7) -> Callable[[int], float]:
    """``step -> lr(step) / max_lr`` for :class:`~torch.optim.lr_scheduler.LambdaLR`.

    The optimizer's base ``lr`` must be ``max_lr`` for the resulting learning rates to be the schedule's.
    Arguments as :func:`soft_start_annealing`, validated once here.
    """
    _validate(total_steps, min_lr, max_lr, soft_start, annealing)
    total_steps, min_lr, max_lr = int(total_steps), float(min_lr), float(max_lr)
    soft_start, annealing = float(soft_start), float(annealing)

    def lr_lambda(step: int) -> float:
        return _lr(step, total_steps, min_lr, max_lr, soft_start, annealing) / max_lr

    return lr_lambda
