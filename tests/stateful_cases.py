"""The one list of stateful objects: every stateful schedule and every LR-owning transform.

Each case builds an optimizer (``axis_name`` optional) and says where its lrjax
state sits, so every shared rule (``test_stateful_rules.py``) runs over all of
them: NaN skipped and counted, saturating counters, float32 statistics under
bf16 parameters, 8-device agreement, orbax resume, no retrace, stable state
structure and dtypes, pytree round trip. A new stateful schedule or LR-owning
transform is added here once.
"""

import dataclasses
from typing import Any, Callable, Optional

import optax

import lrjax


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  build: Callable[[Optional[str]], optax.GradientTransformationExtraArgs]
  lrjax_state: Callable[[Any], Any]   # the lrjax state inside the optimizer state
  schedule: Optional[Callable[[Optional[str]], Any]] = None  # the StatefulSchedule, if one


def _injected(make):
  return Case(
      id=None, build=lambda ax: optax.inject_hyperparams(optax.sgd)(learning_rate=make(ax)),
      lrjax_state=lambda s: s.hyperparams_states["learning_rate"], schedule=make)


def _case(id, case):
  return dataclasses.replace(case, id=id)


SCHEDULES = {
    "reduce_on_plateau": lambda ax: lrjax.reduce_on_plateau(0.1, patience=2, axis_name=ax),
    "reduce_on_plateau_window": lambda ax: lrjax.reduce_on_plateau(0.1, patience=1, window=4,
                                                                   axis_name=ax),
    "greedy": lambda ax: lrjax.greedy(0.1, patience=2, window=5, max_value=1.0, axis_name=ax),
    "window_decay": lambda ax: lrjax.window_decay(lrjax.warmup(0.1, 5), window=8,
                                                  axis_name=ax),
}

CASES = [_case(name, _injected(make)) for name, make in SCHEDULES.items()] + [
    Case("as_transform",
         lambda ax: optax.chain(optax.inject_hyperparams(optax.sgd)(0.1), lrjax.as_transform(
             lrjax.reduce_on_plateau(1.0, factor=0.5, patience=2, axis_name=ax))),
         lambda s: s[1].schedule_state),
    Case("hypergradient",
         lambda ax: lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=0.01,
                                        multiplicative=True, axis_name=ax),
         lambda s: s),
    # The default (Prodigy's estimate as the base, no rate given), over sign descent: an
    # Adam-like direction without a state, so a NaN update leaves only lrjax's own to check.
    Case("learned_controller",
         lambda ax: lrjax.learned_controller(optax.sign_sgd, total_steps=50, axis_name=ax),
         lambda s: s),
    Case("window_search",
         lambda ax: lrjax.window_search(optax.sgd, 0.1, window=12, probe_steps=3,
                                        axis_name=ax),
         lambda s: s),
]
CASE_IDS = [c.id for c in CASES]
SCHEDULE_CASES = [c for c in CASES if c.schedule is not None]

# Fields of an lrjax state that hold parameter-like trees (their dtype follows the params).
PARAM_LIKE = ("inner_state", "snapshot_params", "snapshot_inner", "prev_direction")
