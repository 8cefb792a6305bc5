"""The training unroll: a pure function from (params, state, key, steps) to curves.

``unroll`` trains a task for a fixed number of updates inside one ``lax.scan``
and returns the new parameters, optimizer state and per-step curves. It has no
host work, so it composes with ``jit`` and ``vmap``: over seeds, over a stack
of schedules' hyperparameters (stateful schedules are pytrees), over tasks.
``population`` runs whole runs, evaluations included, for a grid of peaks and
seeds in one compiled program (what ``lrjax compare`` runs). ``train`` is the
host loop around ``unroll``: compiled chunks of ``eval_every`` updates, an
evaluation on held-out data between them, a callback and I/O only there.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax._inspection import current_lr
from lrjax.stateful._observe import has_observer, observe
from lrjax.bench.tasks import Task


_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compiled = [0]


def _count_compilations(event: str, duration_secs: float,
                        **kwargs: Union[str, int]) -> None:
  if event == _COMPILE_EVENT:
    _compiled[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compilations)


def compilations() -> int:
  """How many programs XLA has compiled in this process since ``lrjax.bench`` was imported.

  ``lrjax compare`` reports the difference over a run: the programs it compiled.
  """
  return _compiled[0]


class Curves(NamedTuple):
  """Per-update curves of an unroll: the training loss and the learning rate applied."""
  loss: jax.Array  # shape=(steps,), dtype=float32.
  lr: jax.Array  # shape=(steps,), dtype=float32; NaN where the state hides its rate.


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """Curves from one training run, one entry per evaluation (after ``steps[i]`` updates)."""
  steps: np.ndarray
  train_loss: np.ndarray
  eval_loss: np.ndarray
  metric: np.ndarray
  lrs: np.ndarray
  wall_time: float
  initial_eval_loss: float = float("nan")  # the held-out loss at initialisation.
  lr_every_step: Optional[np.ndarray] = None  # the rate after each update, shape=(total,).
  opt_state: Any = None  # the optimizer state after the last update.
  val_loss: Optional[np.ndarray] = None  # the validation loss at each evaluation, if any.

  @property
  def diverged(self) -> bool:
    """A NaN/inf anywhere, or a final held-out loss above the one at initialisation."""
    curves = (self.train_loss, self.eval_loss, self.metric)
    if not all(np.all(np.isfinite(c)) for c in curves):
      return True
    return bool(np.isfinite(self.initial_eval_loss)
                and self.eval_loss[-1] > self.initial_eval_loss)


def lr_or_nan(opt_state: Any) -> jax.Array:
  """``current_lr(opt_state)`` as a float32 scalar, or NaN when the state hides its rate."""
  try:
    return jnp.asarray(current_lr(opt_state), jnp.float32).reshape(())
  except ValueError:
    return jnp.float32(jnp.nan)


def eval_params(opt_state: Any, params: Any) -> Any:
  """Schedule-free optimizers evaluate at their averaged iterate, not the training one."""
  if isinstance(opt_state, optax.contrib.ScheduleFreeState):
    return optax.contrib.schedule_free_eval_params(opt_state, params)
  return params


def unroll(task: Task, tx: optax.GradientTransformation, params: Any, opt_state: Any,
           key: jax.Array, steps: int) -> tuple[Any, Any, Curves]:
  """Trains ``task`` for ``steps`` updates from ``(params, opt_state)``; pure and traceable.

  Update ``i`` samples its batch with ``jax.random.split(key, steps)[i]`` and
  passes its loss to ``tx.update`` as ``value=`` (stateful schedules use it).

  Args:
    task: the task (its ``sample`` and ``loss_fn``).
    tx: the optimizer.
    params: the parameters to start from.
    opt_state: ``tx``'s state to start from.
    key: the data key of this stretch of training.
    steps: updates (a Python int: the scan's length).

  Returns:
    ``(params, opt_state, curves)`` after the last update.

  Example:
    >>> import jax, optax
    >>> from lrjax.bench import tasks, unroll
    >>> task = tasks.get_task("regression")
    >>> tx = optax.adam(1e-2)
    >>> params = task.init(jax.random.PRNGKey(0))
    >>> _, _, curves = unroll.unroll(task, tx, params, tx.init(params),
    ...                              jax.random.PRNGKey(1), 20)
    >>> curves.loss.shape
    (20,)
  """
  update = optax.with_extra_args_support(tx).update

  def one_step(carry, k):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(task.loss_fn)(params, task.sample(k))
    updates, opt_state = update(grads, opt_state, params, value=loss)
    return (optax.apply_updates(params, updates), opt_state), (loss, lr_or_nan(opt_state))

  (params, opt_state), (losses, lrs) = jax.lax.scan(one_step, (params, opt_state),
                                                    jax.random.split(key, steps))
  return params, opt_state, Curves(loss=losses.astype(jnp.float32), lr=lrs)


def init_and_unroll(task: Task, tx: optax.GradientTransformation, seed_key: jax.Array,
                    steps: int) -> Curves:
  """A whole run from one seed: initialise as ``train`` does, then ``unroll``; ``vmap`` it."""
  init_key, data_key = jax.random.split(seed_key)
  params = task.init(init_key)
  return unroll(task, tx, params, tx.init(params), jax.random.fold_in(data_key, 0), steps)[2]


class Evaluations(NamedTuple):
  """The curves of one run of ``population``, one entry per evaluation (leading axes: runs).

  Evaluation ``i`` follows update ``min((i + 1) * eval_every, steps)``.
  """
  train_loss: jax.Array  # (..., evaluations): the mean training loss of the chunk before it.
  eval_loss: jax.Array  # (..., evaluations): ``task.evaluate``'s loss (the test split).
  metric: jax.Array  # (..., evaluations): ``task.evaluate``'s metric.
  val_loss: jax.Array  # (..., evaluations): ``task.validate``'s loss; NaN without one.
  lr: jax.Array  # (..., steps): the rate after every update; NaN where the state hides it.
  initial_eval_loss: jax.Array  # (...): the test loss at initialisation.
  loss: jax.Array  # (..., steps): the training loss of every update (before it is applied).


def _validation_loss(task: Task, params: Any) -> jax.Array:
  if task.validate is None:
    return jnp.float32(jnp.nan)
  return jnp.asarray(task.validate(params)["loss"], jnp.float32)


def run_in_graph(task: Task, build: Callable[[jax.Array], optax.GradientTransformation],
                 peak: jax.Array, seed: jax.Array, steps: int, eval_every: int,
                 observe_eval_loss: bool = False) -> Evaluations:
  """One whole run, evaluations included, as one traceable function: ``train`` in the graph.

  Initialises from ``seed`` and trains ``build(peak)`` for ``steps`` updates with the batches,
  keys and evaluation points of ``train(task, build(peak), steps, seed, eval_every)``; the
  held-out evaluations run inside the same program. ``peak`` and ``seed`` may be traced, so
  ``population`` maps it over a grid of both with one compiled program. With
  ``observe_eval_loss`` each evaluation's validation loss (the test loss for a task without
  ``validate``) is fed to a stateful schedule built with ``signal="observe"``.
  """
  tx = build(peak)
  init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
  params = task.init(init_key)
  opt_state = tx.init(params)
  feed = observe_eval_loss and has_observer(opt_state)
  initial = task.evaluate(eval_params(opt_state, params))["loss"]

  def chunk(carry, done, n):
    params, opt_state = carry
    params, opt_state, curves = unroll(task, tx, params, opt_state,
                                       jax.random.fold_in(data_key, done), n)
    at = eval_params(opt_state, params)
    ev, val = task.evaluate(at), _validation_loss(task, at)
    if feed:
      opt_state = observe(opt_state, val if task.validate is not None else ev["loss"])
    row = (jnp.mean(curves.loss), jnp.asarray(ev["loss"], jnp.float32),
           jnp.asarray(ev["metric"], jnp.float32), val, curves.lr, curves.loss)
    return (params, opt_state), row

  full, rest = divmod(steps, eval_every)
  carry, rows = jax.lax.scan(lambda c, done: chunk(c, done, eval_every), (params, opt_state),
                             jnp.arange(full, dtype=jnp.int32) * eval_every)
  rows = rows[:4] + (rows[4].reshape(-1), rows[5].reshape(-1))
  if rest:
    _, last = chunk(carry, full * eval_every, rest)
    rows = tuple(jnp.concatenate([a, jnp.atleast_1d(b)]) for a, b in zip(rows, last))
  train_loss, eval_loss, metric, val_loss, lr, loss = rows
  return Evaluations(train_loss, eval_loss, metric, val_loss, lr,
                     jnp.asarray(initial, jnp.float32), loss)


def population(task: Task, build: Callable[[jax.Array], optax.GradientTransformation],
               steps: int, eval_every: int, observe_eval_loss: bool = False,
               batch_size: int = 1) -> Any:
  """A jitted ``fn(peaks, seeds) -> Evaluations``: one run per ``(peaks[i], seeds[i])``.

  One compiled program for the whole population: ``run_in_graph`` under ``lax.map`` in
  batches of ``batch_size`` runs (``vmap`` inside a batch, batches one after another). On a
  CPU one run at a time (``batch_size=1``) is fastest; on an accelerator larger batches fill
  the device. ``peaks`` (float32, or any pytree of arrays that ``build`` takes, e.g.
  ``(schedule index, peak)`` for ``runner.shared_builder``) and ``seeds`` (int32) have one entry
  per run along their first axis; pad them to a multiple of ``batch_size``.

  Args:
    task: the task.
    build: ``peak -> optax.GradientTransformation``, called in the graph (a traced peak).
    steps: updates per run.
    eval_every: updates between evaluations (the last chunk may be shorter).
    observe_eval_loss: feed each evaluation's validation loss to a schedule built with
      ``signal="observe"``.
    batch_size: runs side by side under ``vmap``.

  Returns:
    The jitted function; its ``Evaluations`` have the runs as their first axis.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from lrjax.bench import tasks, unroll
    >>> task = tasks.get_task("regression")
    >>> fn = unroll.population(task, optax.adam, steps=30, eval_every=10)
    >>> out = fn(jnp.array([1e-3, 1e-2]), jnp.array([0, 0], jnp.int32))
    >>> out.eval_loss.shape, out.lr.shape
    ((2, 3), (2, 30))
  """
  def run_one(member):
    return run_in_graph(task, build, member[0], member[1], steps, eval_every,
                        observe_eval_loss)

  batch = None if batch_size == 1 else batch_size  # plain lax.map: no vmap of one run
  return jax.jit(lambda peaks, seeds: jax.lax.map(run_one, (peaks, seeds), batch_size=batch))


def _chunk(task: Task, tx: optax.GradientTransformation) -> Callable[..., Any]:
  """``jit`` of ``eval_every`` updates of ``unroll`` (the count static) for one task and
  optimizer."""
  def run_chunk(params, opt_state, key, n):
    params, opt_state, curves = unroll(task, tx, params, opt_state, key, n)
    return params, opt_state, jnp.mean(curves.loss), curves.lr
  return jax.jit(run_chunk, static_argnums=3)


_cached_chunk = functools.lru_cache(maxsize=8)(_chunk)


def _chunk_program(task: Task, tx: optax.GradientTransformation) -> Callable[..., Any]:
  """``_chunk`` of ``(task, tx)``, the same compiled program for the same pair (the last few
  kept): ``train`` called again on them does not trace and compile again."""
  try:
    return _cached_chunk(task, tx)
  except TypeError:  # a task or optimizer that cannot be hashed: a program for this call
    return _chunk(task, tx)


def train(task: Task, tx: optax.GradientTransformation, steps: int, seed: int = 0,
          eval_every: int = 50,
          on_eval: Optional[Callable[[int, dict], None]] = None,
          observe_eval_loss: bool = False) -> TrainResult:
  """Trains ``task`` with ``tx`` for ``steps`` updates; evaluates every ``eval_every``.

  Each chunk of ``eval_every`` updates is one compiled ``unroll``; between
  chunks the held-out evaluation runs and ``on_eval(step, row)`` is called.
  With ``observe_eval_loss`` each held-out loss is fed to the stateful schedule
  built with ``signal="observe"`` (``lrjax.observe``), as an epoch loop would
  (an optimizer without one trains as usual).
  """
  key = jax.random.PRNGKey(seed)
  init_key, data_key = jax.random.split(key)
  params = task.init(init_key)
  opt_state = tx.init(params)

  chunk = _chunk_program(task, tx)
  evaluate = jax.jit(task.evaluate)
  feed = jax.jit(observe) if observe_eval_loss and has_observer(opt_state) else None
  out: dict[str, list[Any]] = {"steps": [], "train_loss": [], "eval_loss": [], "metric": [],
                               "lrs": []}
  every_step = []
  initial_eval_loss = float(evaluate(eval_params(opt_state, params))["loss"])
  start = time.perf_counter()
  done = 0
  while done < steps:
    n = min(eval_every, steps - done)
    params, opt_state, train_loss, lrs = chunk(params, opt_state,
                                               jax.random.fold_in(data_key, done), n)
    every_step.append(np.asarray(lrs))
    done += n
    ev = evaluate(eval_params(opt_state, params))
    if feed is not None:
      opt_state = feed(opt_state, ev["loss"])
    row = {"steps": done, "train_loss": float(train_loss), "eval_loss": float(ev["loss"]),
           "metric": float(ev["metric"]), "lrs": float(every_step[-1][-1])}
    for k, v in row.items():
      out[k].append(v)
    if on_eval is not None:
      on_eval(done, row)
  wall = time.perf_counter() - start
  return TrainResult(**{k: np.asarray(v) for k, v in out.items()}, wall_time=wall,
                     initial_eval_loss=initial_eval_loss,
                     lr_every_step=np.concatenate(every_step), opt_state=opt_state)
