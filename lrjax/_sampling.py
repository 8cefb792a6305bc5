"""A fixed, weighted sample of a tree's coordinates: statistics of the gradient and the parameters
(inner products, norms, cosines) at a cost that does not grow with the model.

Used by ``learned_controller`` (every statistic it reads) and by ``hypergradient(sample_size=)``
(its g·u). Reading the sample is a strided slice of each leaf, which XLA fuses into the kernel
that produces the leaf, so no pass over the model is made for it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

#: About this many coordinates of the gradient and the parameters are read per update
#: (``sample``); all of them when the model has at most this many.
SAMPLE_SIZE = 8192


def dot(a, b):
  """``a @ b`` for a vector ``a`` as a multiply and a sum: float32 on every backend (no
  matmul, so no TF32), and fused into one small kernel rather than a library call."""
  a = jnp.asarray(a)
  if jnp.ndim(b) == 1:
    return jnp.sum(a * b)
  return jnp.sum(a[:, None] * b, axis=0)


def dots(pairs: list[tuple[Any, Any]]) -> jax.Array:
  """The inner products :math:`a \\cdot b` of pairs of vectors of one length, in one pass: their
  products stacked and summed row by row: one kernel for the sums where a ``dot`` each is a
  kernel each. On XLA's CPU backend each sum is ``dot``'s bit for bit (a row of a stack is
  summed as a vector is; ``tests/test_learned.py`` checks it); another backend may order a
  row's sum otherwise, within float32 rounding.

  Returns:
    A float32 vector: entry ``i`` is ``dot(*pairs[i])``.
  """
  return jnp.sum(jnp.stack([jnp.asarray(a) * b for a, b in pairs]), axis=1)


def reads_whole(tree: Any, size: int = SAMPLE_SIZE) -> bool:
  """Whether ``sample(tree, size)`` reads every coordinate: the tree has at most ``size``."""
  return sum(math.prod(jnp.shape(x)) for x in jax.tree.leaves(tree)) <= size


def _sample_plan(shapes: list[tuple[int, ...]], size: int) -> list[tuple[int, int]]:
  """``(stride, count)`` per leaf: every coordinate when the tree has at most ``size``,
  else a share of ``size`` proportional to the leaf's size, read at a stride prime to its
  last dimension (so a matrix is not sampled in a few columns only)."""
  sizes = [math.prod(shape) for shape in shapes]
  total = sum(sizes)
  plan = []
  for n, shape in zip(sizes, shapes):
    if total <= size or n == 0:
      plan.append((1, n))
      continue
    stride = max(1, n // max(1, round(size * n / total)))
    last = shape[-1] if shape else 1
    while stride > 1 and math.gcd(stride, last) != 1:
      stride += 1
    plan.append((stride, -(-n // stride)))
  return plan


def _planned(tree: Any, size: int) -> list[tuple[Any, int, int]]:
  """``(leaf, stride, count)`` of every leaf ``sample`` reads (``_sample_plan``; empty leaves
  left out): one plan for the sample and its weights."""
  leaves = jax.tree.leaves(tree)
  plan = _sample_plan([tuple(jnp.shape(x)) for x in leaves], size)
  return [(x, stride, count) for x, (stride, count) in zip(leaves, plan) if count]


def sample(tree: Any, size: int = SAMPLE_SIZE) -> jax.Array:
  r"""A fixed sample of a tree's coordinates, weighted so its inner products estimate the tree's.

  Leaf :math:`\ell` with :math:`n_\ell` elements contributes every
  :math:`s_\ell`-th of its (flattened) elements, :math:`m_\ell = \lceil n_\ell /
  s_\ell \rceil` of them, times :math:`\sqrt{n_\ell / m_\ell}`; the strides give
  each leaf a share of ``size`` proportional to :math:`n_\ell`. So for two trees
  of one structure

  .. math::
    \mathrm{sample}(x) \cdot \mathrm{sample}(y) \approx x \cdot y,

  exactly when the tree has at most ``size`` elements (then every stride is 1).
  The same coordinates are read at every call, so successive gradients are
  compared coordinate by coordinate. Reading the sample is a strided slice:
  about ``size`` elements, whatever the model's size.

  Args:
    tree: a tree of arrays.
    size: the coordinates to read, about.

  Returns:
    A float32 vector (its length depends only on the tree's shapes).
  """
  parts = [jnp.ravel(x)[::stride].astype(jnp.float32) * np.float32(math.sqrt(x.size / count))
           for x, stride, count in _planned(tree, size)]
  return jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.float32)


def sample_weights(tree: Any, size: int = SAMPLE_SIZE) -> np.ndarray:
  """The weight :math:`\\sqrt{n_\\ell / m_\\ell}` of each coordinate of ``sample(tree)``, so
  :math:`\\sum_i w_i |\\mathrm{sample}(x)_i|` estimates :math:`\\|x\\|_1` (exactly when every
  stride is 1). A NumPy constant: it depends only on the tree's shapes."""
  parts = [np.full(count, math.sqrt(math.prod(jnp.shape(x)) / count), np.float32)
           for x, _, count in _planned(tree, size)]
  return np.concatenate(parts) if parts else np.zeros((0,), np.float32)
