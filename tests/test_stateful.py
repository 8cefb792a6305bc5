"""Stateful schedules: exact sequences, PyTorch parity, shared robustness rules, Optax use."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

import lrjax
import reference as ref
from lrjax.stateful._window import slope_p_value
from stateful_cases import SCHEDULES


def _lrs_scanned(schedule, values):
  def body(state, v):
    return schedule.update(state, value=v), schedule(state)
  return jax.lax.scan(body, schedule.init(), values)


# Compiled once per schedule structure: the schedule is an argument, not a constant.
_scan = jax.jit(_lrs_scanned)
_scan_each = jax.jit(jax.vmap(_lrs_scanned))  # a stack of schedules, each with its values
_update = jax.jit(lambda schedule, state, value: schedule.update(state, value=value))


def lr_sequence(schedule, values, jit=True):
  """The learning rate used at each update while feeding ``values``."""
  if jit:
    update = functools.partial(_update, schedule)
  else:
    update = lambda state, value: schedule.update(state, value=value)  # noqa: E731
  state = schedule.init()
  out = []
  for v in values:
    out.append(float(schedule(state)))
    state = update(state, value=jnp.float32(v))
  return np.array(out), state


def scan_lr_sequence(schedule, values):
  state, lrs = _scan(schedule, jnp.asarray(values, jnp.float32))
  return np.asarray(lrs), state


# ---- reduce_on_plateau ----------------------------------------------------------

def test_plateau_scripted_sequence():
  s = lrjax.reduce_on_plateau(1.0, factor=0.5, patience=2, cooldown=1, min_value=0.2)
  values = [5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3]
  # best 5, 4; bad 1, 2, 3 -> reduce after update 4 (lr 0.5 from update 5); cooldown 1
  # swallows update 5; bad 1, 2, 3 at updates 6-8 -> 0.25 from 9; updates 9 (cooldown),
  # 10, 11 (an improvement) -> no change.
  want = [1, 1, 1, 1, 1, .5, .5, .5, .5, .25, .25, .25]
  np.testing.assert_allclose(lr_sequence(s, values)[0], want)


def test_plateau_steady_descent_never_reduces():
  s = lrjax.reduce_on_plateau(0.1, patience=3)
  lrs, state = scan_lr_sequence(s, np.linspace(10, 1, 300))
  np.testing.assert_allclose(lrs, 0.1)
  assert int(state.stats.num_bad) == 0


def test_plateau_noisy_descent_reduces_only_once_it_stalls():
  s = lrjax.reduce_on_plateau(1.0, factor=0.1, patience=2)
  values = [10, 9.5, 9.7, 9.0, 9.2, 9.1, 8.5, 8.6, 8.7, 8.8, 8.9]
  # New bests at 0, 1, 3, 6 keep the bad count <= 2; 7, 8, 9 make it 3 > 2.
  np.testing.assert_allclose(lr_sequence(s, values)[0], [1.0] * 10 + [0.1], rtol=1e-6)


def test_plateau_divergence_reduces_every_patience_plus_one():
  # PyTorch's rule alone: a loss climbing 16x is also a spike, which the guard would cut at once.
  s = lrjax.reduce_on_plateau(1.0, factor=0.1, patience=4, guard=False)
  values = [1.0] + [1.0 + k for k in range(1, 16)]
  lrs, _ = lr_sequence(s, values)
  want = [1.0] * 6 + [0.1] * 5 + [0.01] * 5
  np.testing.assert_allclose(lrs, want, rtol=1e-6)


def test_plateau_min_value_and_eps():
  s = lrjax.reduce_on_plateau(1.0, factor=0.1, patience=0, min_value=0.05)
  lrs, _ = lr_sequence(s, [1.0] * 5)
  np.testing.assert_allclose(lrs, [1.0, 1.0, 0.1, 0.05, 0.05], rtol=1e-6)
  s = lrjax.reduce_on_plateau(1e-3, factor=0.5, patience=0, eps=1e-3)
  np.testing.assert_allclose(lr_sequence(s, [1.0] * 4)[0], 1e-3)


def test_plateau_negative_losses_reduce_like_positive_ones():
  """Intended difference: PyTorch's rel test never improves on a flat negative loss."""
  s = lrjax.reduce_on_plateau(1.0, factor=0.5, patience=1)
  values = [-1.0, -2.0, -2.0, -2.0, -2.0, -3.0]
  np.testing.assert_allclose(lr_sequence(s, values)[0], [1, 1, 1, 1, .5, .5])
  # A steady descent of negative losses is an improvement every step: no reduction.
  np.testing.assert_allclose(lr_sequence(s, -np.arange(1.0, 30.0))[0], 1.0)


def test_plateau_max_mode_on_accuracies():
  s = lrjax.reduce_on_plateau(0.1, factor=0.1, patience=1, mode="max", threshold=0.01)
  accs = [0.5, 0.6, 0.7, 0.705, 0.70, 0.71, 0.8, 0.8, 0.8]
  # 0.705 and 0.70 are not > 0.7 * 1.01: bad 1, 2 -> reduce after update 4; 0.71 > 0.707
  # improves; 0.8 improves; then bad 1, 2 -> reduce after update 8.
  want = [.1, .1, .1, .1, .1, .01, .01, .01, .01]
  np.testing.assert_allclose(lr_sequence(s, accs)[0], want, rtol=1e-6)


def test_plateau_window_decides_once_per_window_on_the_mean():
  s = lrjax.reduce_on_plateau(1.0, factor=0.5, patience=0, window=3)
  # windows: mean 2 (best), mean 2 (bad 1 > 0 -> reduce), mean 1 (improves)
  values = [1, 2, 3, 3, 2, 1, 1, 1, 1]
  want = [1, 1, 1, 1, 1, 1, .5, .5, .5]
  lrs, state = lr_sequence(s, values)
  np.testing.assert_allclose(lrs, want)
  assert float(state.stats.best) == 1.0 and int(state.stats.window_count) == 0


def test_plateau_nan_burst_changes_nothing_but_the_counter():
  s = lrjax.reduce_on_plateau(1.0, factor=0.5, patience=1)
  clean = [3.0, 2.0, 2.0, 2.0, 1.0]
  dirty = [3.0, np.nan, 2.0, np.inf, np.nan, 2.0, 2.0, -np.inf, 1.0]
  lrs_clean, s_clean = lr_sequence(s, clean)
  lrs_dirty, s_dirty = lr_sequence(s, dirty)
  finite = [i for i, v in enumerate(dirty) if np.isfinite(v)]
  np.testing.assert_allclose(lrs_dirty[finite], lrs_clean)
  assert int(s_dirty.num_nonfinite) == 4 and int(s_clean.num_nonfinite) == 0
  chex.assert_trees_all_close(s_dirty.stats, s_clean.stats)
  assert int(s_dirty.count) == len(dirty)


GRID = list(itertools.product(["min", "max"], ["rel", "abs"], [0.0, 1e-2, 0.1], [0, 2],
                              [0, 3], [0.1, 0.5], [0.0, 0.02], [1e-8, 5e-3]))


def _grid_metrics(index, mode):
  rng = np.random.default_rng(index)
  # No exact ties with best * (1 - threshold): a linspace 2..1 over 39 steps hits
  # 0.9 * best exactly in reals, and float32 rounding then decides the tie.
  trend = 1.0 + np.exp(-np.arange(40) / 13.0)
  walk = np.concatenate([trend, np.full(30, 1.0), 1.0 + 0.05 * rng.standard_normal(50),
                         rng.uniform(0.5, 1.5, 30)])  # no ties at a float32 margin
  return walk if mode == "min" else 3.0 - walk  # positive in both modes


def _grid_schedule(mode, tmode, threshold, patience, cooldown, factor, min_lr, eps):
  return lrjax.reduce_on_plateau(0.3, factor, patience, threshold, tmode, mode, cooldown,
                                 min_lr, eps, guard=False)  # PyTorch's rule alone


@functools.cache
def _grid_lrs():
  """lrjax's rates at every grid point: one program per (mode, threshold_mode), the numeric
  settings stacked and vmapped (they are pytree leaves)."""
  out = {}
  for mode, tmode in itertools.product(["min", "max"], ["rel", "abs"]):
    index = [i for i, point in enumerate(GRID) if point[:2] == (mode, tmode)]
    stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
                           *[_grid_schedule(*GRID[i]) for i in index])
    values = jnp.asarray(np.stack([_grid_metrics(i, mode) for i in index]), jnp.float32)
    _, lrs = _scan_each(stacked, values)
    out.update(zip(index, np.asarray(lrs)))
  return out


@pytest.mark.parametrize("index", range(len(GRID)),
                         ids=["-".join(map(str, point)) for point in GRID])
def test_plateau_matches_pytorch_algorithm(index):
  mode, tmode, threshold, patience, cooldown, factor, min_lr, eps = GRID[index]
  metrics = _grid_metrics(index, mode)
  oracle = ref.TorchReduceLROnPlateau(0.3, mode, factor, patience, threshold, tmode, cooldown,
                                      min_lr, eps)
  want = []
  for m in metrics:
    want.append(oracle.lr)
    oracle.step(float(np.float32(m)))
  np.testing.assert_allclose(_grid_lrs()[index], want, rtol=1e-5)
  # The stacked run is the single run: one grid point on its own, every 17th.
  if index % 17 == 0:
    alone, _ = scan_lr_sequence(_grid_schedule(*GRID[index]), metrics)
    np.testing.assert_allclose(alone, want, rtol=1e-5)


def test_plateau_torch_itself_when_installed():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  metrics = np.concatenate([np.linspace(3, 1, 20), 1 + 0.1 * rng.standard_normal(80)])
  for mode, tmode, cooldown in itertools.product(["min", "max"], ["rel", "abs"], [0, 2]):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode, 0.5, 3, 1e-3, tmode, cooldown,
                                                       0.01)
    vals = metrics if mode == "min" else 5 - metrics
    want = []
    for m in vals:
      want.append(opt.param_groups[0]["lr"])
      sched.step(float(np.float32(m)))
    s = lrjax.reduce_on_plateau(0.2, 0.5, 3, 1e-3, tmode, mode, cooldown, 0.01, guard=False)
    np.testing.assert_allclose(scan_lr_sequence(s, vals)[0], want, rtol=1e-5)


def test_plateau_with_a_warmup_base():
  s = lrjax.reduce_on_plateau(lrjax.warmup(lrjax.constant(1.0), 4), factor=0.5, patience=0)
  lrs, _ = lr_sequence(s, [5, 4, 3, 2, 1, 1, 1])
  np.testing.assert_allclose(lrs, [0, .25, .5, .75, 1, 1, .5])


# ---- greedy -----------------------------------------------------------------------

def test_greedy_scripted():
  s = lrjax.greedy(1.0, factor=0.5, patience=1, window=1, threshold=0.0, max_value=4.0,
                   min_value=0.25)
  lrs, _ = lr_sequence(s, [5, 4, 3, 2, 1, 1, 1, 1, 1, 1])
  np.testing.assert_allclose(lrs, [1, 1, 2, 4, 4, 4, 4, 2, 1, .5])


@pytest.mark.parametrize("patience,cooldown,warmup,window,factor", [
    (0, 0, 0, 1, 0.5), (2, 3, 2, 5, 0.9), (5, 0, 10, 20, 0.95), (1, 5, 0, 3, 0.7)])
def test_greedy_matches_reference_algorithm(patience, cooldown, warmup, window, factor):
  rng = np.random.default_rng(patience * 100 + window)
  losses = np.concatenate([np.linspace(3, 1, 60) + 0.05 * rng.standard_normal(60),
                           1 + 0.05 * rng.standard_normal(80), np.linspace(1, 2, 30)])
  oracle = ref.GreedyLR(0.1, factor, patience, cooldown, warmup, window, 1e-3, 0.5, 1e-4)
  want = []
  for loss in losses:
    want.append(oracle.lr)
    oracle.step(float(np.float32(loss)))
  s = lrjax.greedy(0.1, factor, patience, cooldown, 1e-3, 0.5, window, warmup, threshold=1e-4)
  np.testing.assert_allclose(scan_lr_sequence(s, losses)[0], want, rtol=1e-4)


def test_greedy_window_counts_only_values_since_a_restart_and_skips_a_nan():
  """The window is not selected on a spike nor on a NaN (no O(window) select an update): its
  counters restart and the next write keeps only the entries they say hold values. After the
  spike the window mean is 0.5 alone, then (0.5 + 0.25) / 2, the NaN between them ignored."""
  s = lrjax.greedy(1.0, window=4, patience=100, threshold=0.0)
  state, bests = s.init(), []
  for value in [1.0] * 6 + [100.0, 0.5, np.nan, 0.25]:
    state = _update(s, state, jnp.float32(value))  # the module's one compiled update
    bests.append(float(state.stats.best))
  assert int(state.guard.num_spikes) == 1 and int(state.num_nonfinite) == 1
  assert bests[6:] == [np.inf, 0.5, 0.5, 0.375]
  np.testing.assert_array_equal(state.stats.losses, [0.5, 0.25, 0.0, 0.0])


def test_greedy_carries_its_window_sum_without_drift():
  """The window's sum is carried (the value in, the displaced one out), its rounding errors
  kept (TwoSum): over losses falling from 1e4 to 1e-4, two NaNs skipped, it stays the exact sum
  of the last five accepted values (float64, from the inputs) to 1e-5; a plain float32
  running sum ends wrong by more than the sum itself (checked below: the test has teeth)."""
  values = np.geomspace(1e4, 1e-4, 400).astype(np.float32)
  values[[100, 250]] = np.nan
  s = lrjax.greedy(1.0, window=5, patience=10**6)

  def body(state, v):
    state = s.update(state, value=v)
    return state, state.stats.total + state.stats.total_error
  _, sums = jax.jit(lambda vs: jax.lax.scan(body, s.init(), vs))(jnp.asarray(values))
  accepted = values[np.isfinite(values)].astype(np.float64)
  kept = np.cumsum(np.isfinite(values)) - 1  # the last accepted value's index in `accepted`
  want = np.array([accepted[max(0, k - 4):k + 1].sum() for k in kept])
  np.testing.assert_allclose(np.asarray(sums, np.float64), want, rtol=1e-5)
  naive, window = np.float32(0), []
  for v in accepted.astype(np.float32):
    window.append(v)
    naive = naive + v - (window.pop(0) if len(window) > 5 else np.float32(0))
  assert abs(naive - want[-1]) > want[-1]


# ---- window_decay -----------------------------------------------------------------

@pytest.mark.parametrize("df,t_crit", [(1, -6.314), (3, -2.353), (10, -1.812), (30, -1.697)])
def test_student_t_cdf_matches_tables(df, t_crit):
  from lrjax.stateful._window import student_t_cdf
  assert float(student_t_cdf(jnp.float32(t_crit), float(df))) == pytest.approx(0.05, abs=2e-4)


def test_slope_p_value_matches_scipy_linregress():
  rng = np.random.default_rng(3)
  for slope in (-0.05, -0.01, 0.0, 0.02):
    y = 2 + slope * np.arange(30) + 0.1 * rng.standard_normal(30)
    res = scipy.stats.linregress(np.arange(30), y, alternative="less")
    assert float(slope_p_value(jnp.asarray(y, jnp.float32))) == pytest.approx(res.pvalue,
                                                                             abs=1e-4)


def test_window_decay_decays_only_stalled_windows():
  s = lrjax.window_decay(1.0, window=10, factor=0.5)
  rng = np.random.default_rng(1)
  descent = np.linspace(3, 2, 10) + 0.01 * rng.standard_normal(10)
  flat = 2 + 0.05 * rng.standard_normal(10)
  values = np.concatenate([descent, descent - 1, flat, flat, descent - 2])
  lrs, state = scan_lr_sequence(s, values)
  want = [1.0] * 30 + [0.5] * 10 + [0.25] * 10
  np.testing.assert_allclose(lrs, want)
  assert int(state.stats.num_decays) == 2


def test_window_decay_state_is_a_few_scalars_whatever_the_window():
  for window in (4, 64, 4096):
    leaves = jax.tree.leaves(jax.eval_shape(lrjax.window_decay(1.0, window=window).init))
    assert sum(np.size(x) for x in leaves) <= 25, window  # its window carried as sums


def test_student_t_quantile_matches_tables():
  """The 0.05 quantiles of t tables for 1, 3, 10 and 30 degrees of freedom, and the 0.95
  ones by symmetry (t_0.95 = -t_0.05), in one compiled call."""
  from lrjax.stateful._window import student_t_quantile
  df = jnp.asarray([[1.0, 3.0, 10.0, 30.0]] * 2)
  table = np.array([-6.314, -2.353, -1.812, -1.697])
  q = jnp.asarray([[0.05] * 4, [0.95] * 4], jnp.float32)
  got = jax.jit(student_t_quantile)(q, df)
  np.testing.assert_allclose(got, [table, -table], atol=1e-3)


def test_window_decay_tests_each_window_as_linregress_does():
  """Its carried sums give each window's t statistic, p-value and decision as SciPy's
  ``linregress(alternative="less")`` on the stored window does (at a level of 1000 with noise
  of 0.01, where raw sums of the values would lose every digit of the residual)."""
  window, rng = 25, np.random.default_rng(7)
  rows = [1000 + slope * np.arange(window) + 0.01 * rng.standard_normal(window)
          for slope in (-0.003, -0.001, 0.0, 0.002, -0.0005, 0.0)]
  values = np.concatenate(rows).astype(np.float32)
  s = lrjax.window_decay(1.0, window=window, factor=0.5, significance=0.1, guard=False)

  def body(state, v):
    state = s.update(state, value=v)
    return state, (state.stats.t_value, s.p_value(state), state.scale)
  _, (t, p, scale) = jax.jit(lambda vs: jax.lax.scan(body, s.init(), vs))(jnp.asarray(values))
  ends = np.arange(1, len(rows) + 1) * window - 1
  decays = 0
  for i, end in zip(range(len(rows)), ends):
    res = scipy.stats.linregress(np.arange(window),
                                 values[i * window:(i + 1) * window].astype(np.float64),
                                 alternative="less")
    want_t = res.slope / res.stderr
    assert float(t[end]) == pytest.approx(want_t, rel=2e-3, abs=2e-3), i
    assert float(p[end]) == pytest.approx(res.pvalue, abs=1e-3), i
    decays += res.pvalue > 0.1
    assert float(scale[end]) == 0.5 ** decays, i
  assert 0 < decays < len(rows)
  with pytest.raises(TypeError, match="p_value: state must be a window_decay state"):
    s.p_value(lrjax.greedy(1.0).init())


# ---- shared rules, for every stateful schedule ------------------------------------

# The one list (stateful_cases.py); structure, retrace, bf16, donation, devices and
# checkpoints run over it in test_stateful_rules.py. Here: the schedule API on its own.
STATEFUL = {name: functools.partial(make, None) for name, make in SCHEDULES.items()}
STATEFUL_PARAMS = pytest.mark.parametrize("name", list(STATEFUL))


def _losses(n=200, seed=0):
  rng = np.random.default_rng(seed)
  return np.concatenate([np.linspace(3, 1, n // 2), np.ones(n - n // 2)]) + \
      0.05 * rng.standard_normal(n)


@STATEFUL_PARAMS
def test_jit_scan_and_eager_agree(name):
  s = STATEFUL[name]()
  values = _losses(120)
  eager, _ = lr_sequence(s, values[:40], jit=False)
  scanned, _ = scan_lr_sequence(s, values[:40])
  np.testing.assert_allclose(eager, scanned, rtol=1e-5)


@STATEFUL_PARAMS
def test_nan_values_are_skipped(name):
  s = STATEFUL[name]()
  values = _losses(100)
  dirty = values.copy()
  dirty[[10, 11, 50, 77]] = [np.nan, np.inf, np.nan, -np.inf]
  _, state_dirty = scan_lr_sequence(s, dirty)
  assert int(state_dirty.num_nonfinite) == 4
  assert np.all(np.isfinite(np.asarray(jax.tree.leaves(state_dirty.stats)[0])))
  assert np.isfinite(float(s(state_dirty)))


def test_counters_saturate_instead_of_wrapping():
  s = lrjax.reduce_on_plateau(1.0)
  state = s.init()
  big = jnp.int32(2**31 - 1)
  state = state._replace(count=big, num_nonfinite=big,
                         stats=state.stats._replace(num_bad=big))
  state = s.update(state, value=jnp.float32(np.nan))
  state = s.update(state, value=jnp.float32(1.0))
  assert int(state.count) == 2**31 - 1 and int(state.num_nonfinite) == 2**31 - 1


def test_value_is_keyword_only_and_required():
  s = lrjax.reduce_on_plateau(1.0)
  with pytest.raises(TypeError):
    s.update(s.init())
  with pytest.raises(TypeError):
    s.update(s.init(), 1.0)
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=s)
  with pytest.raises(TypeError, match="value"):
    tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2))


# ---- Optax and Flax integration ---------------------------------------------------

def _train(tx, steps=30, losses=None):
  params = {"w": jnp.ones(3)}
  state = tx.init(params)

  @jax.jit
  def step(params, state, loss):
    grads = jax.tree.map(lambda p: 2 * p, params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  lrs = []
  losses = np.ones(steps) if losses is None else losses
  for loss in losses:
    params, state = step(params, state, jnp.float32(loss))
    lrs.append(float(lrjax.current_lr(state)))
  return params, state, np.array(lrs)


def test_inject_hyperparams_uses_the_value_before_update():
  s = lrjax.reduce_on_plateau(0.1, factor=0.5, patience=1)
  losses = [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
  _, _, lrs = _train(optax.inject_hyperparams(optax.sgd)(learning_rate=s), losses=losses)
  want, _ = lr_sequence(s, losses)
  np.testing.assert_allclose(lrs, want, rtol=1e-6)


@pytest.mark.parametrize("wrap", ["plain", "chain", "multisteps", "apply_if_finite", "nested"])
def test_current_lr_through_compositions(wrap):
  s = lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0)
  inner = optax.inject_hyperparams(optax.adam)(learning_rate=s)
  tx = {"plain": lambda: inner,
        "chain": lambda: optax.chain(optax.clip_by_global_norm(1.0), inner),
        "multisteps": lambda: optax.MultiSteps(inner, every_k_schedule=1),
        "apply_if_finite": lambda: optax.apply_if_finite(inner, 3),
        "nested": lambda: optax.chain(optax.apply_if_finite(optax.chain(optax.identity(), inner),
                                                            3))}[wrap]()
  _, _, lrs = _train(tx, steps=4, losses=[1.0, 1.0, 1.0, 1.0])
  np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.025], rtol=1e-6)


def test_as_transform_in_a_chain_scales_updates():
  # current_lr reports the effective rate: the inner 0.1 times the multiplier (issue 8).
  s = lrjax.reduce_on_plateau(1.0, factor=0.5, patience=0)
  tx = optax.chain(optax.inject_hyperparams(optax.sgd)(0.1), lrjax.as_transform(s))
  params, state, lrs = _train(tx, steps=3, losses=[1.0, 1.0, 1.0])
  np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05], rtol=1e-6)
  # w <- w - 0.1 * lr * 2w with lr 1, 1, 0.5.
  np.testing.assert_allclose(params["w"], 0.8 * 0.8 * 0.9 * np.ones(3), rtol=1e-6)


def test_current_lr_on_a_plain_schedule_and_errors():
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.cosine_decay(1.0, 4))
  state = tx.init(jnp.zeros(1))
  for _ in range(3):
    _, state = tx.update(jnp.ones(1), state)
  assert float(lrjax.current_lr(state)) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="holds no learning rate"):
    lrjax.current_lr(optax.adam(1e-3).init(jnp.zeros(1)))
  with pytest.raises(ValueError, match="no device axis"):
    lrjax.current_lr(state, replicated=True)


def test_flax_nnx_optimizer_forwards_value():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
  s = lrjax.reduce_on_plateau(0.05, factor=0.5, patience=0)
  opt = nnx.Optimizer(model, optax.inject_hyperparams(optax.sgd)(learning_rate=s), wrt=nnx.Param)
  x = jnp.ones((4, 3))

  @nnx.jit
  def step(model, opt, loss_value):
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    opt.update(model, grads, value=loss_value)

  lrs = []
  for _ in range(3):
    step(model, opt, jnp.float32(1.0))
    lrs.append(float(lrjax.current_lr(opt.opt_state)))
  np.testing.assert_allclose(lrs, [0.05, 0.05, 0.025], rtol=1e-6)


# ---- bad arguments ------------------------------------------------------------------

STATEFUL_BAD = [
    (lrjax.reduce_on_plateau, dict(factor=1.0), "lrjax.reduce_on_plateau: factor must be in (0.0, 1.0), got factor=1.0"),
    (lrjax.reduce_on_plateau, dict(patience=-1), "lrjax.reduce_on_plateau: patience must be an integer >= 0, got patience=-1"),
    (lrjax.reduce_on_plateau, dict(patience=2.5), "lrjax.reduce_on_plateau: patience must be an integer >= 0, got patience=2.5"),
    (lrjax.reduce_on_plateau, dict(threshold=-1e-4), "lrjax.reduce_on_plateau: threshold must be >= 0, got threshold=-0.0001"),
    (lrjax.reduce_on_plateau, dict(threshold_mode="relative"), "lrjax.reduce_on_plateau: threshold_mode must be one of 'rel' | 'abs', got threshold_mode='relative'"),
    (lrjax.reduce_on_plateau, dict(mode="minimum"), "lrjax.reduce_on_plateau: mode must be one of 'min' | 'max', got mode='minimum'"),
    (lrjax.reduce_on_plateau, dict(cooldown=-2), "lrjax.reduce_on_plateau: cooldown must be an integer >= 0, got cooldown=-2"),
    (lrjax.reduce_on_plateau, dict(min_value=-1.0), "lrjax.reduce_on_plateau: min_value must be a learning rate >= 0, got min_value=-1.0"),
    (lrjax.reduce_on_plateau, dict(eps=float("nan")), "lrjax.reduce_on_plateau: eps must be finite, got eps=nan"),
    (lrjax.reduce_on_plateau, dict(window=0), "lrjax.reduce_on_plateau: window must be an integer >= 1, got window=0"),
    (lrjax.greedy, dict(factor=1.5), "lrjax.greedy: factor must be in (0.0, 1.0), got factor=1.5"),
    (lrjax.greedy, dict(window=0), "lrjax.greedy: window must be an integer >= 1, got window=0"),
    (lrjax.greedy, dict(min_value=0.1, max_value=0.01), "lrjax.greedy: max_value must be >= min_value=0.1, got max_value=0.01"),
    (lrjax.greedy, dict(warmup=-1), "lrjax.greedy: warmup must be an integer >= 0, got warmup=-1"),
    (lrjax.window_decay, dict(window=2), "lrjax.window_decay: window must be an integer >= 3, got window=2"),
    (lrjax.window_decay, dict(significance=1.0), "lrjax.window_decay: significance must be in (0.0, 1.0), got significance=1.0"),
    (lrjax.window_decay, dict(factor=0.0), "lrjax.window_decay: factor must be in (0.0, 1.0), got factor=0.0"),
]


@pytest.mark.parametrize("factory,kwargs,message", STATEFUL_BAD,
                         ids=[f"{f.__name__}-{i}" for i, (f, _, _) in enumerate(STATEFUL_BAD)])
def test_stateful_bad_arguments(factory, kwargs, message):
  with pytest.raises(ValueError) as info:
    factory(1e-3, **kwargs)
  assert str(info.value).startswith(message), str(info.value)


def test_bad_base_is_named():
  with pytest.raises(ValueError, match="lrjax.greedy: base must be a schedule, a callable or a number"):
    lrjax.greedy("1e-3")


def test_value_must_be_a_scalar():
  s = lrjax.reduce_on_plateau(1.0)
  with pytest.raises(ValueError, match="value must be a scalar"):
    s.update(s.init(), value=jnp.ones(3))
