"""What one compiled update costs, read from XLA's optimized HLO.

``per_step_cost(fn, *args)`` compiles ``fn`` and counts, on the path every call
runs -- the entry computation and what it calls, but not the branches of a
``conditional`` (``lax.cond``: work paid only at a decision) -- the
instructions, the ``while`` loops and the ``select``s over large arrays (an
O(params) choice between two trees). A stateful schedule's update that makes no
decision should add a handful of scalar instructions and neither of the others.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable

import jax
import optax

_COMPUTATION = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?[\w.\-]+\s*=\s*(.+?)\s+([\w\-]+)\(")
# Not kernels: buffer plumbing, and the copies XLA's buffer assignment inserts or removes
# depending on donation and aliasing (they move bytes, but are no work of the update).
_PLUMBING = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast", "copy"}
_COLLECTIVES = {"all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all",
                "all-reduce-start", "all-gather-start", "collective-permute-start"}
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4,
          "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8}
_CALLS = re.compile(r"(?:calls|to_apply|condition|body)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"(?:branch_computations=\{([^}]*)\}|(?:true|false)_computation="
                       r"%?([\w.\-]+))")


@dataclasses.dataclass(frozen=True)
class StepCost:
  """Counts on the per-call path of a compiled function (conditional branches excluded).

  Attributes:
    kernels: fusions and unfused computing instructions on every call (on a GPU, each is a
      kernel launch; parameters, tuples, constants, bitcasts and copies are not counted).
    instructions: HLO instructions executed on every call (inside fusions too).
    whiles: ``while`` loops on that path.
    large_selects: ``select``s whose result has at least ``large`` elements.
    large_reductions: ``reduce``s over an operand of at least ``large`` elements (a norm
      or an inner product over the parameters: an O(params) pass), fused ones included.
    large_kernels: kernels (as in ``kernels``, conditionals left out) whose result has at
      least ``large`` elements: the passes over parameter-sized buffers, the memory traffic
      of an update.
    large_copies: ``copy``s of at least ``large`` elements on that path (XLA's buffer
      assignment inserts them where an in-place update would overwrite a buffer still read).
    conditionals: ``conditional``s on that path (decision work behind them is not counted).
    decision_instructions: instructions inside conditional branches (paid only when taken).
    collectives: cross-device collectives (all-reduce ...) on every call.
    collective_bytes: the bytes those collectives move, per device.
  """
  kernels: int
  instructions: int
  whiles: int
  large_selects: int
  conditionals: int
  decision_instructions: int
  collectives: int = 0
  collective_bytes: int = 0
  large_reductions: int = 0
  large_kernels: int = 0
  large_copies: int = 0


def _bytes(shape: str) -> int:
  total = 0
  for dtype, dims in re.findall(r"(\w+)\[([\d,]*)\]", shape):
    total += _BYTES.get(dtype, 4) * math.prod(int(d) for d in dims.split(",") if d)
  return total


def _size(shape: str) -> int:
  dims = re.findall(r"\[([\d,]*)\]", shape)
  if not dims:
    return 1
  return max(math.prod(int(d) for d in group.split(",") if d) if group else 1 for group in dims)


_NAME = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=")


def _first_operand(op: str, line: str) -> str:
  """The name of an instruction's first operand (``reduce(%mul.0, ...)`` -> ``mul.0``)."""
  rest = line[line.index(op + "(") + len(op) + 1:]
  return re.split(r"[,)]", rest, maxsplit=1)[0].strip().split()[-1].lstrip("%") if rest else ""


def _large_reductions(instructions: list[tuple[str, str, str]], large: int) -> int:
  shapes = {}
  for _, shape, line in instructions:
    name = _NAME.match(line)
    if name:
      shapes[name.group(1)] = shape
  return sum(op == "reduce" and _size(shapes.get(_first_operand(op, line), "")) >= large
             for op, _, line in instructions)


def parse(hlo: str) -> tuple[str, dict[str, list[tuple[str, str, str]]]]:
  """The entry computation's name and ``{computation: [(opcode, shape, line), ...]}``."""
  computations: dict[str, list[tuple[str, str, str]]] = {}
  entry, current = "", None
  for line in hlo.splitlines():
    head = _COMPUTATION.match(line)
    if head and "=" not in line.split("{")[0].split("(")[0]:
      current = head.group(2)
      computations[current] = []
      if head.group(1):
        entry = current
      continue
    ins = _INSTRUCTION.match(line)
    if ins and current is not None:
      computations[current].append((ins.group(3), ins.group(2), line))
  return entry, computations


def per_step_cost(fn: Callable[..., Any], *args: Any, large: int = 1024,
                  donate: bool = False) -> StepCost:
  """Compiles ``jax.jit(fn)(*args)`` and counts its per-call path (see ``StepCost``).

  Args:
    fn: the function (one training update).
    *args: example arguments.
    large: a ``select`` of at least this many elements counts as an O(params) select,
      a ``reduce`` over at least this many as an O(params) reduction.
    donate: donate every argument, as a training step does (state passed through is
      then aliased, not copied).
  """
  jitted = jax.jit(fn, donate_argnums=tuple(range(len(args))) if donate else ())
  hlo = jitted.lower(*args).compile().as_text()
  if hlo is None:
    raise ValueError("lrjax.bench.hlo.per_step_cost: the backend gives no text of its program")
  entry, computations = parse(hlo)
  always: set[str] = set()
  decision: set[str] = set()
  fused: set[str] = set()
  stack = [(entry, False)]
  while stack:
    name, in_branch = stack.pop()
    seen = decision if in_branch else always
    if name in seen or name not in computations:
      continue
    seen.add(name)
    for op, _, line in computations[name]:
      for callee in _CALLS.findall(line):
        stack.append((callee, in_branch))
        if op in ("fusion", "reduce", "map", "sort", "scatter", "reduce-window",
                  "select-and-scatter", "all-reduce"):
          fused.add(callee)
      for group, single in _BRANCHES.findall(line):
        for callee in ([c.strip().lstrip("%") for c in group.split(",")] if group else [single]):
          if callee:
            stack.append((callee, True))
  ops = [op for name in always for op in computations[name]]
  kernels = sum(op not in _PLUMBING for name in always - fused
                for op, _, _ in computations[name])
  unfused = [(op, shape) for name in always - fused for op, shape, _ in computations[name]]
  return StepCost(
      kernels=kernels,
      instructions=len(ops),
      whiles=sum(op == "while" for op, _, _ in ops),
      large_selects=sum(int(op == "select" and _size(shape) >= large)
                        for op, shape, _ in ops),
      conditionals=sum(op == "conditional" for op, _, _ in ops),
      decision_instructions=sum(len(computations[n]) for n in decision - always),
      collectives=sum(op in _COLLECTIVES for op, _, _ in ops),
      collective_bytes=sum(_bytes(shape) for op, shape, _ in ops if op in _COLLECTIVES),
      large_reductions=sum(_large_reductions(computations[n], large) for n in always),
      large_kernels=sum(int(op not in _PLUMBING | {"conditional"} and _size(shape) >= large)
                        for op, shape in unfused),
      large_copies=sum(int(op == "copy" and _size(shape) >= large) for op, shape in unfused))


def training_step(tx: Any, loss_fn: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
  """One training update of ``tx`` (an ``optax.GradientTransformationExtraArgs``) on
  ``loss_fn(params)``, the loss passed as ``value``: ``step(params, state) -> (params, state,
  loss)``, to measure with :func:`per_step_cost` (``donate=True``) or time in a scan.

  The gradient is made to depend on the loss, as in a network (the backward pass starts from
  the forward pass's result). Without it, a toy loss's gradient needs no forward pass, and XLA
  copies the parameters on every update of a transform that does not read the loss (its
  forward pass and its in-place update are unordered) and not of one that does: a 35%
  difference that is no cost of the transform.
  """
  def step(params, state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    grads = jax.tree.map(lambda g: g * (1.0 + 0.0 * loss), grads)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss
  return step
