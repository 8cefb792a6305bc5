"""``lrjax.get_schedule`` against Hugging Face's ``get_scheduler`` lambdas; ``lrjax.log_values``.

The references transcribe the multipliers of ``transformers.optimization``
(``_get_*_lr_lambda``) times the optimizer's initial ``lr``; they are not
lrjax's code.
"""

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

P, W, T = 3e-3, 10, 110


def _warm(t, w):
  return t / max(1, w)


def hf_linear(t, w=W, n=T):
  return _warm(t, w) if t < w else max(0.0, (n - t) / max(1, n - w))


def hf_cosine(t, w=W, n=T, cycles=0.5):
  if t < w:
    return _warm(t, w)
  p = (t - w) / max(1, n - w)
  return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * p)))


def hf_hard_restarts(t, w=W, n=T, cycles=3):
  if t < w:
    return _warm(t, w)
  p = (t - w) / max(1, n - w)
  if p >= 1.0:
    return 0.0
  return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((cycles * p) % 1.0))))


def hf_polynomial(t, w=W, n=T, lr_end=1e-7, power=2.0, lr_init=P):
  if t < w:
    return _warm(t, w)
  if t > n:
    return lr_end / lr_init
  decay = (lr_init - lr_end) * (1 - (t - w) / (n - w)) ** power + lr_end
  return decay / lr_init


def hf_inverse_sqrt(t, w=W, timescale=None):
  timescale = timescale or w or 10_000
  if t < w:
    return _warm(t, w)
  return 1.0 / math.sqrt((t + timescale - w) / timescale)


def hf_constant_with_warmup(t, w=W):
  return _warm(t, w) if t < w else 1.0


def hf_cosine_min_lr(t, w=W, n=T, rate=0.1):
  if t < w:
    return _warm(t, w)
  p = (t - w) / max(1, n - w)
  f = 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * p))
  return max(0, f * (1 - rate) + rate)


def hf_wsd(t, w=W, stable=60, decay=40, decay_type="cosine", ratio=0.05):
  if t < w:
    return max(0.0, _warm(t, w) * (1.0 - ratio) + ratio)
  if t < w + stable:
    return 1.0
  if t < w + stable + decay:
    p = (t - w - stable) / max(1, decay)
    f = {"linear": 1.0 - p, "cosine": 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * p)),
         "1-sqrt": 1.0 - math.sqrt(p)}[decay_type]
    return max(0.0, f * (1.0 - ratio) + ratio)
  return ratio


# (name, kwargs, reference multiplier, last step where lrjax equals the reference).
CASES = [
    ("constant", {}, lambda t: 1.0, 200),
    ("constant_with_warmup", {}, hf_constant_with_warmup, 200),
    ("linear", {}, hf_linear, 200),
    ("cosine", {}, hf_cosine, T),  # past T Hugging Face's multiplier rises again; lrjax holds 0
    ("cosine_with_restarts", dict(num_cycles=3), hf_hard_restarts, 200),
    ("polynomial", dict(power=2.0), hf_polynomial, 200),
    ("inverse_sqrt", {}, hf_inverse_sqrt, 200),
    ("inverse_sqrt", dict(timescale=50), lambda t: hf_inverse_sqrt(t, timescale=50), 200),
    ("cosine_with_min_lr", dict(min_lr_rate=0.1), hf_cosine_min_lr, T),
    ("cosine_with_min_lr", dict(min_lr=0.1 * P), hf_cosine_min_lr, T),
    ("warmup_stable_decay", dict(num_decay_steps=40, min_lr_ratio=0.05), hf_wsd, 200),
    ("wsd", dict(num_decay_steps=40, num_stable_steps=60, decay_type="1-sqrt",
                 min_lr_ratio=0.05), lambda t: hf_wsd(t, decay_type="1-sqrt"), 200),
    ("wsd", dict(num_decay_steps=40, decay_type="linear", min_lr_ratio=0.05),
     lambda t: hf_wsd(t, decay_type="linear"), 200),
]


@pytest.mark.parametrize("name,kwargs,ref,last", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_get_schedule_matches_hugging_face(name, kwargs, ref, last):
  s = lrjax.get_schedule(name, peak_value=P, num_warmup_steps=W, num_training_steps=T, **kwargs)
  steps = np.arange(0, last + 1)
  want = np.array([P * ref(int(t)) for t in steps])
  np.testing.assert_allclose(np.asarray(s(steps)), want, rtol=2e-5, atol=1e-9)


def test_cosine_holds_its_end_where_hugging_face_rises_again():
  s = lrjax.get_schedule("cosine", peak_value=P, num_warmup_steps=W, num_training_steps=T)
  assert float(s(T + 50)) == 0.0
  assert hf_cosine(T + 50) > 0.1  # the documented difference is real


def test_plateau_names_give_the_stateful_schedule_with_pytorch_arguments():
  s = lrjax.get_schedule("reduce_lr_on_plateau", peak_value=0.1, patience=0, factor=0.5,
                         min_lr=0.02)
  assert isinstance(s, lrjax.StatefulSchedule) and s.min_value == 0.02 and s.factor == 0.5
  assert lrjax.get_schedule("plateau", peak_value=0.1).patience == 10  # PyTorch's default


@pytest.mark.parametrize("call,message", [
    (dict(name="cosine_decay", peak_value=1e-3), "unknown schedule name 'cosine_decay'"),
    (dict(name="linear", peak_value=1e-3, num_warmup_steps=10),
     "'linear' requires num_training_steps"),
    (dict(name="linear", peak_value=1e-3, num_training_steps=10),
     "'linear' requires num_warmup_steps"),
    (dict(name="linear", peak_value=1e-3, num_warmup_steps=10, num_training_steps=10),
     "needs num_training_steps > num_warmup_steps"),
    (dict(name="linear", peak_value=-1e-3, num_warmup_steps=1, num_training_steps=10),
     "peak_value must be a learning rate >= 0, got peak_value=-0.001"),
    (dict(name="linear", peak_value="1e-3", num_warmup_steps=1, num_training_steps=10),
     "peak_value must be a number, not a string"),
    (dict(name="linear", peak_value=float("nan"), num_warmup_steps=1, num_training_steps=10),
     "peak_value must be finite"),
    (dict(name="linear", peak_value=1e-3, num_warmup_steps=1.5, num_training_steps=10),
     "num_warmup_steps must be an integer >= 0"),
    (dict(name="linear", peak_value=1e-3, num_warmup_steps=1, num_training_steps=10,
          num_cycles=2), "'linear' takes no argument num_cycles"),
    (dict(name="cosine", peak_value=1e-3, num_warmup_steps=1, num_training_steps=10,
          num_cycles=2), "'cosine' supports num_cycles=0.5"),
    (dict(name="polynomial", peak_value=1e-7, num_warmup_steps=1, num_training_steps=10),
     "'polynomial' needs lr_end < peak_value"),
    (dict(name="cosine_with_min_lr", peak_value=1e-3, num_warmup_steps=1, num_training_steps=10),
     "needs exactly one of min_lr and min_lr_rate"),
    (dict(name="wsd", peak_value=1e-3, num_warmup_steps=1, num_training_steps=10),
     "'warmup_stable_decay' requires num_decay_steps"),
    (dict(name="wsd", peak_value=1e-3, num_warmup_steps=1, num_training_steps=10,
          num_decay_steps=2, warmup_type="cosine"), "warmup_type must be one of 'linear'"),
])
def test_bad_calls_are_one_clear_error(call, message):
  with pytest.raises(ValueError, match="lrjax.get_schedule: .*" + message.replace("(", r"\(")
                     .replace(")", r"\)").replace(".", r"\.")):
    lrjax.get_schedule(**call)


def test_log_values_reads_every_kind_of_state():
  params = jnp.zeros(2)
  grads = jnp.ones(2)
  tx = optax.chain(optax.inject_hyperparams(optax.adamw)(
      learning_rate=lrjax.reduce_on_plateau(0.1, patience=0, factor=0.5), weight_decay=1e-4))
  state = tx.init(params)
  update = optax.with_extra_args_support(tx).update
  for loss in (1.0, 1.0, float("nan")):
    _, state = update(grads, state, params, value=jnp.float32(loss))
  values = lrjax.log_values(state, prefix="train/")
  assert values["train/lr"] == pytest.approx(0.05)  # one plateau halved it
  assert values["train/reduce_on_plateau/scale"] == pytest.approx(0.5)
  assert values["train/reduce_on_plateau/num_nonfinite"] == 1.0
  assert values["train/hyperparams/weight_decay"] == pytest.approx(1e-4)
  assert all(isinstance(v, float) for v in values.values())

  hg = lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=1e-3)
  s = hg.init(params)
  _, s = hg.update(grads, s, params)
  got = lrjax.log_values(s)
  assert set(got) == {"lr", "hypergradient/lr", "hypergradient/hypergradient",
                      "hypergradient/num_nonfinite", "hypergradient/num_spikes"}
  assert got["lr"] == got["hypergradient/lr"]

  plain = optax.adam(0.1).init(params)
  assert lrjax.log_values(plain) == {}
  assert lrjax.log_values(plain, schedule=0.1) == {"lr": pytest.approx(0.1)}
