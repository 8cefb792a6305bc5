"""Reference values, transcribed from the documented formulas and algorithms.

Each function here is written from the reference library's documentation or
source (PyTorch ``torch.optim.lr_scheduler``, Keras 3
``keras.optimizers.schedules``, Optax 0.2.8) or the paper, in plain Python
float64 arithmetic, never by calling lrjax. See ../shared/REFERENCES.md.
"""

import math


# ---- PyTorch (value read before the t-th scheduler.step()) -------------------

def torch_step_lr(base, step_size, gamma, t):
  return base * gamma ** (t // step_size)


def torch_multistep_lr(base, milestones, gamma, t):
  return base * gamma ** sum(1 for m in milestones if m <= t)


def torch_exponential_lr(base, gamma, t):
  return base * gamma ** t


def torch_linear_lr(base, start_factor, end_factor, total_iters, t):
  k = min(t, total_iters)
  return base * (start_factor + (end_factor - start_factor) * k / total_iters)


def torch_polynomial_lr(base, total_iters, power, t):
  return base * (1 - min(t, total_iters) / total_iters) ** power


def torch_cosine_annealing_lr(base, t_max, eta_min, t):
  """Closed form on [0, T_max]; lrjax holds eta_min afterwards (documented)."""
  t = min(t, t_max)
  return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def torch_cosine_warm_restarts_sequence(base, t_0, t_mult, eta_min, n):
  """The stepping algorithm: T_cur += 1; on T_cur >= T_i restart, T_i *= T_mult."""
  out, t_cur, t_i = [], 0, t_0
  for _ in range(n):
    out.append(eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
    t_cur += 1
    if t_cur >= t_i:
      t_cur -= t_i
      t_i *= t_mult
  return out


def torch_cyclic_lr(base_lr, max_lr, up, down, mode, gamma, t):
  down = up if down is None else down
  total = float(up + down)
  ratio = up / total
  cycle = math.floor(1 + t / total)
  x = 1.0 + t / total - cycle
  scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
  height = (max_lr - base_lr) * scale
  if mode == "triangular":
    return base_lr + height
  if mode == "triangular2":
    return base_lr + height * (1 / (2.0 ** (cycle - 1)))
  return base_lr + height * gamma ** t


def torch_one_cycle_lr(max_lr, total_steps, pct_start, anneal, div_factor,
                       final_div_factor, three_phase, t):
  initial = max_lr / div_factor
  low = initial / final_div_factor
  if three_phase:
    phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
              (float(2 * pct_start * total_steps) - 2, max_lr, initial),
              (total_steps - 1, initial, low)]
  else:
    phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
              (total_steps - 1, max_lr, low)]
  start = 0
  for i, (end, a, e) in enumerate(phases):
    if t <= end or i == len(phases) - 1:
      pct = (t - start) / (end - start)
      if anneal == "cos":
        return e + (a - e) / 2.0 * (math.cos(math.pi * pct) + 1)
      return (e - a) * pct + a
    start = end


def torch_swalr(lr0, swa_lr, anneal_epochs, strategy, k):
  alpha = min(1.0, k / anneal_epochs)
  if strategy == "cos":
    alpha = (1 - math.cos(math.pi * alpha)) / 2
  return swa_lr * alpha + lr0 * (1 - alpha)


# ---- Keras 3 -----------------------------------------------------------------

def keras_inverse_time_decay(init, decay_steps, decay_rate, staircase, t):
  p = t / decay_steps
  if staircase:
    p = math.floor(p)
  return init / (1 + decay_rate * p)


def keras_polynomial_decay(init, decay_steps, end, power, cycle, t):
  if cycle:
    mult = 1.0 if t == 0 else math.ceil(t / decay_steps)
    decay_steps = decay_steps * mult
  else:
    t = min(t, decay_steps)
  return (init - end) * (1 - t / decay_steps) ** power + end


def keras_cosine_decay_restarts(init, first_decay_steps, t_mul, m_mul, alpha, t):
  fraction = t / first_decay_steps
  if t_mul == 1.0:
    i_restart = math.floor(fraction)
    fraction -= i_restart
  else:
    i_restart = math.floor(math.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
    sum_r = (1.0 - t_mul ** i_restart) / (1.0 - t_mul)
    fraction = (fraction - sum_r) / t_mul ** i_restart
  m_fac = m_mul ** i_restart
  cosine = 0.5 * m_fac * (1.0 + math.cos(math.pi * fraction))
  return init * ((1 - alpha) * cosine + alpha)


# ---- Optax 0.2.8 ---------------------------------------------------------------

def optax_exponential_decay(init, transition_steps, rate, begin, staircase, end, t):
  count = t - begin
  p = count / transition_steps
  if staircase:
    p = math.floor(p)
  value = init if count <= 0 else init * rate ** p
  if end is not None:
    value = max(value, end) if rate < 1 else min(value, end)
  return value


def optax_polynomial(init, end, power, transition_steps, begin, t):
  count = min(max(t - begin, 0), transition_steps)
  return (init - end) * (1 - count / transition_steps) ** power + end


def optax_cosine_decay(init, decay_steps, alpha, exponent, t):
  t = min(t, decay_steps)
  c = 0.5 * (1 + math.cos(math.pi * t / decay_steps))
  return init * ((1 - alpha) * c ** exponent + alpha)


def optax_warmup_cosine_decay(init, peak, warmup, decay_steps, end, exponent, t):
  if t < warmup:
    return init + (peak - init) * t / warmup
  alpha = 0.0 if peak == 0 else end / peak
  return optax_cosine_decay(peak, decay_steps - warmup, alpha, exponent, t - warmup)


def optax_join(schedules, boundaries, t):
  value = schedules[0](t)
  for b, s in zip(boundaries, schedules[1:]):
    if t >= b:
      value = s(t - b)
  return value


# ---- Papers -------------------------------------------------------------------

def wsd(peak, warmup, stable, decay, init, end, shape, t):
  """Hu et al. 2024 (MiniCPM), Hägele et al. 2024 (1-sqrt cooldown)."""
  if t < warmup:
    return init + (peak - init) * t / warmup
  k = min(max(t - warmup - stable, 0), decay)
  q = k / decay
  f = {"1-sqrt": 1 - math.sqrt(q), "linear": 1 - q,
       "cosine": (1 + math.cos(math.pi * q)) / 2}[shape]
  return end + (peak - end) * f


def inverse_sqrt(peak, warmup, timescale, t):
  tau = warmup if timescale is None else timescale
  if t < warmup:
    return peak * t / warmup
  return peak * math.sqrt(tau / (t - warmup + tau))


def piecewise_constant(boundaries, values, t):
  """values[i] on [b_{i-1}, b_i): the next value from the boundary step on (lrjax's documented
  convention, PyTorch MultiStepLR's; Keras switches one step later, see keras_piecewise_constant)."""
  k = 0
  for b in boundaries:
    if t >= b:
      k += 1
  return values[k]


def keras_piecewise_constant(boundaries, values, t):
  """Keras PiecewiseConstantDecay: values[0] for t <= b_0, values[i] for b_{i-1} < t <= b_i."""
  for b, v in zip(boundaries, values):
    if t <= b:
      return v
  return values[-1]


# ---- Stateful schedules: the documented step algorithms, host-side ------------

class TorchReduceLROnPlateau:
  """PyTorch ``ReduceLROnPlateau.step(metric)``, transcribed (one param group)."""

  def __init__(self, lr, mode="min", factor=0.1, patience=10, threshold=1e-4,
               threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
    self.lr, self.mode, self.factor, self.patience = lr, mode, factor, patience
    self.threshold, self.threshold_mode = threshold, threshold_mode
    self.cooldown, self.min_lr, self.eps = cooldown, min_lr, eps
    self.best = math.inf if mode == "min" else -math.inf
    self.num_bad = 0
    self.cooldown_counter = 0

  def is_better(self, a, best):
    if self.mode == "min" and self.threshold_mode == "rel":
      return a < best * (1.0 - self.threshold)
    if self.mode == "min" and self.threshold_mode == "abs":
      return a < best - self.threshold
    if self.mode == "max" and self.threshold_mode == "rel":
      return a > best * (self.threshold + 1.0)
    return a > best + self.threshold

  def step(self, metric):
    if self.is_better(metric, self.best):
      self.best = metric
      self.num_bad = 0
    else:
      self.num_bad += 1
    if self.cooldown_counter > 0:
      self.cooldown_counter -= 1
      self.num_bad = 0
    if self.num_bad > self.patience:
      new_lr = max(self.lr * self.factor, self.min_lr)
      if self.lr - new_lr > self.eps:
        self.lr = new_lr
      self.cooldown_counter = self.cooldown
      self.num_bad = 0


class GreedyLR:
  """GreedyLR's step (Subramanian & Ganapathiraman 2023; the public reference
  implementation's order of operations), smoothing always on, no reset."""

  def __init__(self, lr, factor, patience, cooldown, warmup, window, min_lr, max_lr,
               threshold, eps=1e-8):
    self.lr, self.factor, self.patience = lr, factor, patience
    self.cooldown, self.warmup, self.window_size = cooldown, warmup, window
    self.min_lr, self.max_lr, self.threshold, self.eps = min_lr, max_lr, threshold, eps
    self.window, self.best = [], math.inf
    self.good = self.bad = self.cooldown_counter = self.warmup_counter = 0

  def step(self, loss):
    self.window.append(loss)
    if len(self.window) > self.window_size:
      self.window.pop(0)
    smoothed = sum(self.window) / len(self.window)
    if smoothed < self.best - self.threshold:
      self.best = smoothed
      self.good += 1
      self.bad = 0
    else:
      self.good = 0
      self.bad += 1
    if self.cooldown_counter < self.cooldown:
      self.cooldown_counter += 1
      self.good = 0
    if self.warmup_counter < self.warmup:
      self.warmup_counter += 1
      self.bad = 0
    if self.good > self.patience:
      new = self.lr / self.factor
      if self.max_lr is not None:
        new = min(new, self.max_lr)
      if new - self.lr > self.eps:
        self.lr = new
      self.cooldown_counter = 0
    if self.bad > self.patience:
      new = max(self.lr * self.factor, self.min_lr)
      if self.lr - new > self.eps:
        self.lr = new
      self.warmup_counter = 0
