"""Every bad argument raises a ValueError that names the function, argument and value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax

nan, inf = float("nan"), float("inf")

BAD = [
    # (constructor, args, kwargs, message fragment)
    ("constant", (nan,), {}, "lrjax.constant: value must be finite, got value=nan"),
    ("linear", (1.0, 0.0, 0), {}, "lrjax.linear: transition_steps must be > 0, got transition_steps=0"),
    ("linear", (1.0, 0.0, 10, -1), {}, "lrjax.linear: transition_begin must be >= 0, got transition_begin=-1"),
    ("linear", (inf, 0.0, 10), {}, "lrjax.linear: init_value must be finite, got init_value=inf"),
    ("polynomial", (1.0, 0.0, 0.0, 10), {}, "lrjax.polynomial: power must be > 0, got power=0.0"),
    ("polynomial", (1.0, 0.0, 1.0, -5), {}, "lrjax.polynomial: transition_steps must be > 0, got transition_steps=-5"),
    ("exponential_decay", (1.0, 0, 0.5), {}, "lrjax.exponential_decay: transition_steps must be > 0, got transition_steps=0"),
    ("exponential_decay", (1.0, 10, 0.0), {}, "lrjax.exponential_decay: decay_rate must be > 0, got decay_rate=0.0"),
    ("exponential_decay", (1.0, 10, 0.5), {"end_value": nan}, "lrjax.exponential_decay: end_value must be finite, got end_value=nan"),
    ("step_decay", (1.0, 0), {}, "lrjax.step_decay: step_size must be > 0, got step_size=0"),
    ("step_decay", (1.0, 10, -0.1), {}, "lrjax.step_decay: gamma must be >= 0, got gamma=-0.1"),
    ("multistep_decay", (1.0, [30, 10]), {}, "lrjax.multistep_decay: milestones must be sorted (non-decreasing), got milestones=[30, 10]"),
    ("multistep_decay", (1.0, [-1, 10]), {}, "lrjax.multistep_decay: milestones must be >= 0, got milestones=[-1, 10]"),
    ("multistep_decay", (1.0, [[1, 2]]), {}, "lrjax.multistep_decay: milestones must be a 1-D sequence of numbers"),
    ("inverse_time_decay", (1.0, 0, 0.5), {}, "lrjax.inverse_time_decay: decay_steps must be > 0, got decay_steps=0"),
    ("inverse_time_decay", (1.0, 10, -0.5), {}, "lrjax.inverse_time_decay: decay_rate must be >= 0, got decay_rate=-0.5"),
    ("inverse_sqrt", (1.0, 0), {}, "lrjax.inverse_sqrt: warmup_steps must be > 0 when timescale is None, got warmup_steps=0"),
    ("inverse_sqrt", (1.0, -3), {}, "lrjax.inverse_sqrt: warmup_steps must be >= 0, got warmup_steps=-3"),
    ("inverse_sqrt", (1.0, 10), {"timescale": 0.0}, "lrjax.inverse_sqrt: timescale must be > 0, got timescale=0.0"),
    ("cosine_decay", (1.0, 0), {}, "lrjax.cosine_decay: decay_steps must be > 0, got decay_steps=0"),
    ("cosine_decay", (1.0, 100), {"exponent": 0.0}, "lrjax.cosine_decay: exponent must be > 0, got exponent=0.0"),
    ("cosine_decay", (1.0, 100), {"end_value": nan}, "lrjax.cosine_decay: end_value must be finite, got end_value=nan"),
    ("warmup", (lrjax.constant(1.0), -1), {}, "lrjax.warmup: warmup_steps must be >= 0, got warmup_steps=-1"),
    ("warmup", (lrjax.constant(1.0), 10), {"shape": "quadratic"}, "lrjax.warmup: shape must be one of 'linear' | 'cosine' | 'exponential', got shape='quadratic'"),
    ("warmup", (lrjax.constant(1.0), 10), {"shape": "exponential"}, "lrjax.warmup: init_value must be > 0 for shape='exponential', got init_value=0.0"),
    ("warmup", (lrjax.constant(0.0), 10, 1e-3, "exponential"), {}, "lrjax.warmup: schedule(0) must be > 0 for shape='exponential', got schedule(0)=0.0"),
    ("warmup", ("fast", 10), {}, "lrjax.warmup: schedule must be a schedule, a callable or a number, got schedule='fast'"),
    ("warmup_cosine_decay", (0.0, 1.0, 10, 10), {}, "lrjax.warmup_cosine_decay: decay_steps must be > warmup_steps=10, got decay_steps=10"),
    ("warmup_cosine_decay", (0.0, 1.0, -1, 10), {}, "lrjax.warmup_cosine_decay: warmup_steps must be >= 0, got warmup_steps=-1"),
    ("wsd", (1.0, 10, 100, 0), {}, "lrjax.wsd: decay_steps must be > 0, got decay_steps=0"),
    ("wsd", (1.0, 10, -1, 10), {}, "lrjax.wsd: stable_steps must be >= 0, got stable_steps=-1"),
    ("wsd", (1.0, 10, 100, 10), {"decay_shape": "sqrt"}, "lrjax.wsd: decay_shape must be one of '1-sqrt' | 'linear' | 'cosine', got decay_shape='sqrt'"),
    ("wsd", (nan, 10, 100, 10), {}, "lrjax.wsd: peak_value must be finite, got peak_value=nan"),
    ("cyclic", (0.1, 1.0, 0), {}, "lrjax.cyclic: step_size_up must be > 0, got step_size_up=0"),
    ("cyclic", (0.1, 1.0, 10, -2), {}, "lrjax.cyclic: step_size_down must be > 0, got step_size_down=-2"),
    ("cyclic", (0.1, 1.0, 10), {"mode": "sine"}, "lrjax.cyclic: mode must be one of 'triangular' | 'triangular2' | 'exp_range', got mode='sine'"),
    ("cyclic", (0.1, 1.0, 10), {"gamma": 0.0}, "lrjax.cyclic: gamma must be > 0, got gamma=0.0"),
    ("cosine_restarts", (1.0, 0), {}, "lrjax.cosine_restarts: first_period must be > 0, got first_period=0"),
    ("cosine_restarts", (1.0, 10, 0.5), {}, "lrjax.cosine_restarts: period_mult must be >= 1, got period_mult=0.5"),
    ("cosine_restarts", (1.0, 10, 1.0, 0.0), {}, "lrjax.cosine_restarts: peak_decay must be > 0, got peak_decay=0.0"),
    ("one_cycle", (1.0, 0), {}, "lrjax.one_cycle: total_steps must be > 0, got total_steps=0"),
    ("one_cycle", (1.0, 100, 1.0), {}, "lrjax.one_cycle: pct_start must be in (0.0, 1.0), got pct_start=1.0"),
    ("one_cycle", (1.0, 100, 0.0), {}, "lrjax.one_cycle: pct_start must be in (0.0, 1.0), got pct_start=0.0"),
    ("one_cycle", (1.0, 100), {"anneal": "cosine"}, "lrjax.one_cycle: anneal must be one of 'cos' | 'linear', got anneal='cosine'"),
    ("one_cycle", (1.0, 100), {"div_factor": 0.0}, "lrjax.one_cycle: div_factor must be > 0, got div_factor=0.0"),
    ("one_cycle", (1.0, 100), {"final_div_factor": -1.0}, "lrjax.one_cycle: final_div_factor must be > 0, got final_div_factor=-1.0"),
    ("one_cycle", (1.0, 3, 0.3), {}, "lrjax.one_cycle: pct_start must be such that every phase lasts > 0 steps"),
    ("one_cycle", (1.0, 10, 0.6), {"three_phase": True}, "lrjax.one_cycle: pct_start must be such that every phase lasts > 0 steps"),
    ("piecewise_constant", ([10, 5], [1.0, 0.5, 0.1]), {}, "lrjax.piecewise_constant: boundaries must be strictly increasing, got boundaries=[10, 5]"),
    ("piecewise_constant", ([5, 5], [1.0, 0.5, 0.1]), {}, "lrjax.piecewise_constant: boundaries must be strictly increasing, got boundaries=[5, 5]"),
    ("piecewise_constant", ([5, 10], [1.0, 0.5]), {}, "lrjax.piecewise_constant: values must have len(boundaries) + 1 = 3 entries, got 2"),
    ("piecewise_constant", ([-5], [1.0, 0.5]), {}, "lrjax.piecewise_constant: boundaries must be >= 0, got boundaries=[-5]"),
    ("piecewise_constant", ([5], [1.0, nan]), {}, "lrjax.piecewise_constant: values must be finite, got values=[1.0, nan]"),
    ("piecewise_linear", ([], []), {}, "lrjax.piecewise_linear: boundaries must have at least one point, got []"),
    ("piecewise_linear", ([0, 10], [1.0]), {}, "lrjax.piecewise_linear: values must have len(boundaries) = 2 entries, got 1"),
    ("piecewise_linear", ([10, 0], [1.0, 0.0]), {}, "lrjax.piecewise_linear: boundaries must be strictly increasing, got boundaries=[10, 0]"),
    ("join", ([lrjax.constant(1.0), lrjax.constant(0.5)], []), {}, "lrjax.join: boundaries must have len(schedules) - 1 = 1 entries, got 0"),
    ("join", ([lrjax.constant(1.0), lrjax.constant(0.5), 0.1], [10, 5]), {}, "lrjax.join: boundaries must be sorted (non-decreasing), got boundaries=[10, 5]"),
    ("join", ([], []), {}, "lrjax.join: schedules must hold at least one schedule, got []"),
    ("join", (lrjax.constant(1.0), []), {}, "lrjax.join: schedules must be a sequence of schedules"),
    ("join", ([lrjax.constant(1.0), "x"], [3]), {}, "lrjax.join: schedules[1] must be a schedule, a callable or a number, got schedules[1]='x'"),
    ("clip", (lrjax.constant(1.0), 0.5, 0.1), {}, "lrjax.clip: max_value must be >= min_value=0.5, got max_value=0.1"),
    ("scale", (lrjax.constant(1.0), nan), {}, "lrjax.scale: factor must be finite, got factor=nan"),
    ("swa_schedule", (1.0, 0.05, -1, 10), {}, "lrjax.swa_schedule: start_step must be >= 0, got start_step=-1"),
    ("swa_schedule", (1.0, 0.05, 10, 0), {}, "lrjax.swa_schedule: anneal_steps must be > 0, got anneal_steps=0"),
    ("swa_schedule", (1.0, 0.05, 10, 5), {"anneal": "cosine"}, "lrjax.swa_schedule: anneal must be one of 'cos' | 'linear', got anneal='cosine'"),
    ("product", (), {}, "lrjax.product: needs at least one schedule, got none"),
    # The stateful schedules share the registry (issue 8); their full lists are in test_stateful.
    ("reduce_on_plateau", (1e-3,), {"factor": 1.0}, "lrjax.reduce_on_plateau: factor must be in (0.0, 1.0), got factor=1.0"),
    ("greedy", (1e-3,), {"min_value": 0.1, "max_value": 0.01}, "lrjax.greedy: max_value must be >= min_value=0.1, got max_value=0.01"),
    ("window_decay", (1e-3,), {"window": 2}, "lrjax.window_decay: window must be an integer >= 3, got window=2"),
]


@pytest.mark.parametrize("name,args,kwargs,message", BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_argument_raises_named_value_error(name, args, kwargs, message):
  factory = getattr(lrjax, name)
  with pytest.raises(ValueError) as info:
    factory(*args, **kwargs)
  assert str(info.value).startswith(message), str(info.value)


def test_every_public_constructor_has_a_bad_input_case():
  covered = {b[0] for b in BAD}
  assert set(lrjax.schedule_names()) - {"function"} <= covered


def test_unknown_keyword_is_a_type_error_naming_the_function():
  with pytest.raises(TypeError, match=r"lrjax\.cosine_decay: .*alpha"):
    lrjax.cosine_decay(1.0, 100, alpha=0.1)


def test_create_unknown_name_lists_the_known_ones():
  with pytest.raises(ValueError, match=r"lrjax.create: unknown schedule name 'cosine'; known: .*cosine_decay"):
    lrjax.create("cosine", init_value=1.0)


def test_create_bad_keyword_names_the_schedule():
  with pytest.raises(ValueError, match=r"lrjax.step_decay: .*step"):
    lrjax.create("step_decay", init_value=1.0, steps=10)


def test_from_config_requires_a_name():
  with pytest.raises(ValueError, match="lrjax.from_config: config must be a dict with a 'name' key"):
    lrjax.from_config({"init_value": 1.0})


def test_optax_callable_inside_a_join_cannot_be_serialised():
  import optax
  s = lrjax.join([lrjax.constant(1.0), optax.constant_schedule(0.5)], [3])
  with pytest.raises(ValueError, match="only lrjax schedules can be serialised"):
    s.to_config()


def test_traced_values_are_accepted_and_checked_at_run_time_only():
  @jax.jit
  def lr(peak, steps):
    return lrjax.cosine_decay(peak, steps)(5)
  assert float(lr(1.0, 10)) == pytest.approx(0.5)


def test_numpy_and_jax_scalars_are_validated_too():
  with pytest.raises(ValueError, match="decay_steps must be > 0, got decay_steps=0"):
    lrjax.cosine_decay(1.0, np.int32(0))
  with pytest.raises(ValueError, match="init_value must be finite"):
    lrjax.cosine_decay(jnp.float32(nan), 10)


def test_a_string_for_a_number_is_refused_by_every_constructor():
  """Regression: cosine_decay("nan", 100) reached NumPy, which parsed it: a silent NaN schedule."""
  import inspect
  from lrjax._validation import _numeric
  from lrjax.schedules._base import _PRESETS, _REGISTRY
  checked = 0
  for name in sorted(_PRESETS):
    kwargs = _PRESETS[name](100, 1e-3)
    params = inspect.signature(_REGISTRY[name]).parameters
    for arg in [k for k in kwargs if k in params and _numeric(params[k].annotation)]:
      bad = dict(kwargs, **{arg: "1"})
      with pytest.raises(ValueError, match=rf"lrjax\.{name}: {arg} must be a number, not a "
                         rf"string, got {arg}='1'"):
        lrjax.create(name, **bad)
      checked += 1
  assert checked > 40


def _public_constructors():
  """Every public constructor with arguments that build it: the registry's presets + the rest."""
  import optax
  from lrjax.schedules._base import _PRESETS, _REGISTRY
  table = {name: (_REGISTRY[name], _PRESETS[name](100, 1e-3)) for name in _PRESETS}
  table.update({
      "hypergradient": (lrjax.hypergradient, dict(optimizer_factory=optax.adam, init_value=1e-3,
                                                  hyper_lr=1e-7)),
      "window_search": (lrjax.window_search, dict(optimizer_factory=optax.adam, base=1e-3,
                                                  window=20, probe_steps=4)),
      "learned_controller": (lrjax.learned_controller, dict(
          optimizer_factory=optax.adam, init_value=1e-3, every=2, min_value=1e-6,
          max_value=1.0, total_steps=100, guard_factor=4.0, guard_cut=0.1)),
      "ema_params": (lrjax.ema_params, dict(decay=0.99)),
      "swa": (lrjax.swa, dict(start_step=10, every=2)),
      "lawa": (lrjax.lawa, dict(k=2, every=5)),
      "scheduled_weight_decay": (lrjax.scheduled_weight_decay, dict(weight_decay=1e-4)),
      "find_lr": (lrjax.find_lr, dict(loss_fn=lambda p, b: jnp.sum(p ** 2), params=jnp.ones(2),
                                      batches=jnp.ones((5, 1)), min_lr=1e-6, max_lr=1.0,
                                      num_steps=5, smoothing=0.9, diverge_factor=4.0)),
  })
  return table


def _numeric_args(factory, kwargs):
  import inspect
  from lrjax._validation import NON_NEGATIVE_ARGS, _numeric
  params = inspect.signature(factory).parameters
  return [k for k in kwargs if k in params
          and (_numeric(params[k].annotation) or k in NON_NEGATIVE_ARGS)
          and not callable(kwargs[k])]


PUBLIC = _public_constructors()
PUBLIC_ARGS = [(name, arg) for name, (f, kw) in sorted(PUBLIC.items())
               for arg in _numeric_args(f, kw)]


def _bad_value(arg):
  from hypothesis import strategies as st
  from lrjax._validation import NON_NEGATIVE_ARGS
  bad = [st.sampled_from([nan, float("inf"), -float("inf"), np.float32(nan), jnp.inf]),
         st.text(max_size=6), st.sampled_from(["1", "1e-3", "nan", "inf", "abc", ""])]
  if arg in NON_NEGATIVE_ARGS:
    bad.append(st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False))
  return st.one_of(bad)


def test_the_property_test_covers_every_constructor_and_many_arguments():
  # product takes schedules only: no numeric argument to spoil.
  assert set(lrjax.schedule_names()) - {"function", "product"} <= {n for n, _ in PUBLIC_ARGS}
  assert len(PUBLIC_ARGS) > 60


@pytest.mark.parametrize("name,arg", PUBLIC_ARGS, ids=[f"{n}-{a}" for n, a in PUBLIC_ARGS])
def test_random_bad_arguments_are_refused_naming_function_argument_and_value(name, arg):
  """A non-numeric, non-finite or (for a learning rate) negative value: one clear ValueError."""
  from hypothesis import given, settings, HealthCheck

  factory, kwargs = PUBLIC[name]

  @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
  @given(value=_bad_value(arg))
  def check(value):
    with pytest.raises(ValueError) as info:
      factory(**{**kwargs, arg: value})
    message = str(info.value)
    assert message.startswith(f"lrjax.{name}: {arg} must be"), message
    assert f"got {arg}=" in message, message

  check()
