"""The ``lrjax`` command line.

``lrjax plot SPEC [SPEC ...] --steps N -o out.png`` draws schedules, where SPEC
is ``name:key=value,...`` (values are JSON: numbers, strings, lists) or the
path of a JSON file holding a schedule config. ``lrjax list`` prints the
schedule names. ``lrjax plan fit|predict|optimize`` fits loss-curve laws.
Bad input gets one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Optional, Sequence

import lrjax
from lrjax.bench import report, runner, tasks
from lrjax.plan import _cli as plan_cli
from lrjax.schedules._base import build_preset


class CLIError(Exception):
  """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
  """An ``ArgumentParser`` whose usage errors are one ``lrjax: error: ...`` line, exit 2."""

  def error(self, message):
    command = self.prog.split()[1:]
    hint = f"lrjax {command[0]} --help" if command else "lrjax --help"
    where = f"{command[0]}: " if command else ""
    self.exit(2, f"lrjax: error: {where}{message} (see {hint})\n")


def _split_top_level(text: str) -> list[str]:
  """Splits ``a=1,b=[1,2]`` on the commas outside brackets and quotes."""
  parts: list[str] = []
  current: list[str] = []
  depth, quote = 0, None
  for ch in text:
    if quote:
      quote = None if ch == quote else quote
    elif ch in "\"'":
      quote = ch
    elif ch in "[{(":
      depth += 1
    elif ch in "]})":
      depth -= 1
    elif ch == "," and depth == 0:
      parts.append("".join(current))
      current = []
      continue
    current.append(ch)
  parts.append("".join(current))
  return [p for p in parts if p.strip()]


def _parse_value(text: str) -> Any:
  text = text.strip()
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    pass
  try:
    return json.loads(text.replace("'", '"'))
  except json.JSONDecodeError:
    return text  # a bare word, e.g. mode=triangular2


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
  """``"name:k=v,..."`` or a JSON file path -> (label, config dict)."""
  if spec.endswith(".json") or os.path.isfile(spec):
    try:
      with open(spec) as f:
        config: dict[str, Any] = json.load(f)
    except OSError as e:
      raise CLIError(f"cannot read schedule file {spec!r}: {e.strerror}") from None
    except json.JSONDecodeError as e:
      raise CLIError(f"schedule file {spec!r} is not valid JSON: {e}") from None
    if not isinstance(config, dict) or "name" not in config:
      raise CLIError(f"schedule file {spec!r} must hold a JSON object with a 'name' key")
    return os.path.splitext(os.path.basename(spec))[0], config
  name, _, rest = spec.partition(":")
  name = name.strip()
  if not name:
    raise CLIError(f"bad schedule spec {spec!r}: expected name:key=value,...")
  config = {"name": name}
  for item in _split_top_level(rest):
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
      raise CLIError(f"bad schedule spec {spec!r}: {item!r} is not key=value")
    config[key.strip()] = _parse_value(value)
  return spec, config


def _build(config: dict[str, Any]):
  try:
    schedule = lrjax.from_config(config)
  except (ValueError, TypeError) as e:
    raise CLIError(str(e)) from None
  if not isinstance(schedule, lrjax.Schedule):
    raise CLIError(f"{config['name']!r} is a stateful schedule: its learning rate follows the "
                   "training signal, so it has no curve to plot (try it in lrjax compare)")
  return schedule


def _horizon_range(text: str) -> tuple[int, int]:
  """``SHORTEST,LONGEST``: two integers, 1 <= SHORTEST <= LONGEST (``meta.check_horizons``)."""
  from lrjax import meta
  try:
    return meta.check_horizons("meta_train", tuple(int(p) for p in text.split(",")))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"must be SHORTEST,LONGEST with 1 <= SHORTEST <= LONGEST, got {text!r}") from None


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
  if value <= 0:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
  return value


def _positive_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
  if not (math.isfinite(value) and value > 0):
    raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
  return value


def _cmd_plot(args) -> int:
  schedules = {}
  for spec in args.specs:
    label, config = parse_spec(spec)
    schedules[label] = _build(config)
  out_dir = os.path.dirname(os.path.abspath(args.output))
  if not os.path.isdir(out_dir):
    raise CLIError(f"cannot write {args.output!r}: folder {out_dir!r} does not exist")
  if not os.access(out_dir, os.W_OK):
    raise CLIError(f"cannot write {args.output!r}: folder {out_dir!r} is not writable")
  try:
    lrjax.plot_schedules(schedules, args.steps, path=args.output, log_scale=args.log)
  except ImportError as e:
    raise CLIError(str(e)) from None
  except ValueError as e:
    raise CLIError(str(e)) from None
  print(f"wrote {args.output} ({len(schedules)} schedule(s), {args.steps} steps)")
  return 0


def _peak_list(text: str) -> list[float]:
  try:
    peaks = [float(p) for p in text.split(",") if p.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"must be numbers separated by commas, got {text!r}") \
        from None
  try:
    return runner.check_peaks(peaks)
  except ValueError as e:
    raise argparse.ArgumentTypeError(f"{e}, got {text!r}") from None


def _cmd_compare(args) -> int:
  task_names = [t.strip() for t in args.task.split(",") if t.strip()]
  unknown_tasks = [t for t in task_names if t not in tasks.TASKS and ":" not in t]
  if unknown_tasks or not task_names:
    raise CLIError(f"unknown task {', '.join(map(repr, unknown_tasks)) or '(none given)'}; "
                   f"known: {', '.join(tasks.TASKS)}, or module:function for your own")
  if len(set(task_names)) != len(task_names):
    raise CLIError(f"--task names a task twice: {args.task!r}")
  if args.peaks is not None and args.tune is not None:
    raise CLIError("give --peaks or --tune, not both")
  peaks = (args.peaks if args.peaks is not None
           else runner.tune_grid(args.peak_lr, args.tune) if args.tune is not None
           else [args.peak_lr])
  names = [n.strip() for n in args.schedules.split(",") if n.strip()]
  try:
    runner.check_schedules(names)
  except ValueError as e:
    raise CLIError(f"--schedules: {e}") from None
  try:
    os.makedirs(args.out, exist_ok=True)
    probe = os.path.join(args.out, ".lrjax-write-test")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise CLIError(f"cannot write to --out {args.out!r}: {e.strerror}") from None
  summaries = []
  for task_name in task_names:
    folder = task_name.replace(":", "_").replace(".", "_")
    out = args.out if len(task_names) == 1 else os.path.join(args.out, folder)
    try:
      summary = runner.run(task_name, names, args.steps, args.seeds, peaks, out,
                           args.eval_every, progress=not args.quiet, signal=args.signal,
                           rank_by=args.rank_by)
    except (ImportError, ValueError, MemoryError) as e:
      raise CLIError(str(e)) from None
    summaries.append(summary)
    print(report.format_table(summary))
    print(f"wrote {out}/results.json, results.csv, lr_every_step.csv, curves/*.csv, "
          "train_loss_curves.png, loss_curves.png, metric_curves.png, lr_curves.png"
          + (", peak_sensitivity.png" if len(peaks) > 1 else ""))
  if len(summaries) > 1:
    print()
    print(report.format_scores(summaries))
  return 0


def _cmd_list(args) -> int:
  names = [n for n in lrjax.schedule_names() if n != "function"]
  built = {n: build_preset(n, 100, 1e-3) for n in names}
  kinds = {
      "pure schedules (lrjax plot, lrjax compare, lrjax.create)":
          [n for n in names if isinstance(built[n], lrjax.Schedule)],
      "stateful schedules (lrjax compare, lrjax.create)":
          [n for n in names if not isinstance(built[n], lrjax.Schedule)],
      "transforms and Optax baselines (lrjax compare)":
          sorted(set(runner.optimizers(100, 1e-3)) - set(names)),
  }
  for title, members in kinds.items():
    print(f"# {title}")
    for name in members:
      print(name)
  return 0


def _cmd_meta_train(args) -> int:
  from lrjax import meta
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
    raise CLIError(f"cannot write --out {args.out!r}: no writable folder {out_dir!r}")
  if not args.out.endswith(".npz"):
    raise CLIError(f"--out must name an .npz file, got {args.out!r}")
  checkpoint = args.checkpoint or args.out + ".checkpoint.npz"
  structures = (tuple(meta.FAMILY) if args.structures is None else
                tuple(name.strip() for name in args.structures.split(",") if name.strip()))
  unknown = [name for name in structures if name not in meta.STRUCTURES]
  if not structures or unknown or len(set(structures)) != len(structures):
    raise CLIError(f"--structures must name distinct structures among "
                   f"{', '.join(meta.STRUCTURES)}, got {args.structures!r}")
  try:
    result = meta.meta_train(
        iterations=args.iterations, pairs=args.pairs, sigma=args.sigma,
        learning_rate=args.learning_rate, seed=args.seed, hidden_size=args.hidden_size,
        lbfgs_steps=args.lbfgs_steps, checkpoint=checkpoint,
        validate_every=args.validate_every, progress=not args.quiet,
        validation=(meta.validation_draws(args.validation_draws, structures=structures,
                                          horizons=args.horizons)
                    if args.validate_every else None),
        log=lambda line: print(line, flush=True), decisions=args.decisions,
        horizons=args.horizons, warmup_divisor=args.warmup_divisor,
        task_family={name: meta.STRUCTURES[name] for name in structures})
  except ValueError as e:
    raise CLIError(str(e)) from None
  meta.save_weights(args.out, result.weights, seed=args.seed, iterations=args.iterations,
                    pairs=args.pairs, sigma=args.sigma, learning_rate=args.learning_rate,
                    lbfgs_steps=args.lbfgs_steps, best_iteration=result.best_iteration,
                    **({} if args.decisions is None else {"decisions": args.decisions}),
                    **({} if args.validation_draws == 12
                       else {"validation_draws": args.validation_draws}),
                    **({} if args.horizons == meta.HORIZONS
                       else {"horizons": ",".join(map(str, args.horizons))}),
                    **({} if structures == tuple(meta.FAMILY)
                       else {"structures": ",".join(structures)}),
                    **({} if args.warmup_divisor == meta.TRAIN_WARMUP_DIVISOR
                       else {"warmup_divisor": args.warmup_divisor}))
  print(f"wrote {args.out}: the weights of ES iteration {result.best_iteration} of "
        f"{result.iterations} ({result.wall_time / 60:.1f} min this session; checkpoint "
        f"{checkpoint})")
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(
      prog="lrjax", description="Learning-rate schedules for JAX and Optax.")
  parser.add_argument("--version", action="version", version=f"lrjax {lrjax.__version__}")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
  plot = sub.add_parser(
      "plot", help="draw schedules to an image",
      description="Draw schedules to an image. SPEC is name:key=value,... "
      "(e.g. cosine_decay:init_value=0.1,decay_steps=1000) or a JSON config file.")
  plot.add_argument("specs", nargs="+", metavar="SPEC")
  plot.add_argument("--steps", type=_positive_int, default=1000,
                    help="number of steps to draw (default 1000)")
  plot.add_argument("-o", "--output", default="schedules.png",
                    help="image path (default schedules.png)")
  plot.add_argument("--log", action="store_true", help="logarithmic learning-rate axis")
  plot.set_defaults(func=_cmd_plot)
  cmp = sub.add_parser(
      "compare", help="train a task under many schedules and compare them",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter,
      description="Train a task under every schedule with AdamW (every seed and peak of a "
      "schedule in one compiled program), and report which schedule trains fastest.")
  cmp.add_argument("--task", default="digits",
                   help=f"one of {', '.join(tasks.TASKS)}, or module:function (your own: a "
                   "function returning an lrjax.bench.Task, imported from the current folder "
                   "or the installed packages), or several separated by commas (each in its "
                   "own folder under --out, then an AlgoPerf-style score)")
  cmp.add_argument("--schedules", default=",".join(runner.DEFAULT_SCHEDULES),
                   help="comma-separated names, any of: "
                   + ", ".join(sorted(runner.optimizers(100, 1e-3))))
  cmp.add_argument("--steps", type=_positive_int, default=300, help="updates per run")
  cmp.add_argument("--seeds", type=_positive_int, default=3,
                   help="runs per schedule (and per peak)")
  cmp.add_argument("--peak-lr", type=_positive_float, default=3e-2,
                   help="the peak (or starting) learning rate every schedule is built with")
  cmp.add_argument("--peaks", type=_peak_list, default=None,
                   help="several peak learning rates, e.g. 1e-3,3e-3,1e-2: every schedule runs "
                   "at every peak (all inside its compiled program) and is reported at its best "
                   "on the validation split; draws peak_sensitivity.png")
  cmp.add_argument("--tune", type=_positive_int, default=None, metavar="N",
                   help="--peaks as N log-spaced values from --peak-lr/10 to --peak-lr*10")
  cmp.add_argument("--eval-every", type=_positive_int, default=25,
                   help="updates between held-out evaluations")
  cmp.add_argument("--out", default="lrjax-compare", help="output folder")
  cmp.add_argument("--signal", choices=runner.SIGNAL_SOURCES, default="train",
                   help="what the adaptive schedules decide on: the training loss of every "
                   "update (train) or the held-out loss at every evaluation (val)")
  cmp.add_argument("--rank-by", choices=runner.RANK_BY, default="train_loss",
                   help="what ranks the schedules: the final training loss (how well each "
                   "optimised; the mean over the last --eval-every updates) or the task's "
                   "held-out metric")
  cmp.add_argument("--quiet", action="store_true", help="no progress bar")
  cmp.set_defaults(func=_cmd_compare)
  mt = sub.add_parser(
      "meta-train", help="meta-train the learned controller's weights (synthetic tasks only)",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter,
      description="Meta-train lrjax.learned_controller: antithetic evolution strategies on a "
      "synthetic task family, from a zero output layer (the controller's rule alone; "
      "--lbfgs-steps N first fits an imitation of a hand-made rule instead). The defaults "
      "are the shipped weights' recipe; the file itself was reproduced byte for byte at the "
      "commit that trained it, on that machine (docs/learned_controller.md). "
      "Resumes from its checkpoint when one exists.")
  mt.add_argument("--out", default="learned_controller.npz", help="the weights file to write")
  mt.add_argument("--iterations", type=_positive_int, default=1500, help="ES iterations")
  mt.add_argument("--pairs", type=_positive_int, default=8,
                  help="antithetic pairs per iteration")
  mt.add_argument("--sigma", type=_positive_float, default=0.02, help="ES perturbation scale")
  mt.add_argument("--learning-rate", type=_positive_float, default=0.003,
                  help="Adam step on the ES gradient")
  mt.add_argument("--seed", type=int, default=0, help="the seed of every random choice")
  mt.add_argument("--hidden-size", type=_positive_int, default=16, help="GRU units")
  mt.add_argument("--lbfgs-steps", type=int, default=0,
                  help="L-BFGS steps of the imitation fit before ES (0: none)")
  mt.add_argument("--validate-every", type=int, default=100,
                  help="ES iterations between validations on the synthetic draws of "
                  "--validation-draws; the weights written are the best validated (0: none, "
                  "the last iterate)")
  mt.add_argument("--validation-draws", type=_positive_int, default=12,
                  help="fixed synthetic draws in each validation (the first 12 are the "
                  "default's)")
  mt.add_argument("--horizons", type=_horizon_range, default="100,2000",
                  help="SHORTEST,LONGEST: each draw's horizon is log-uniform over it (the "
                  "shipped weights': 100,2000)")
  mt.add_argument("--checkpoint", default=None,
                  help="checkpoint path (default: OUT.checkpoint.npz)")
  mt.add_argument("--decisions", type=_positive_int, default=None,
                  help="in a draw whose horizon is given, the network decides every "
                  "horizon // DECISIONS updates, as learned_controller(every=None) does with "
                  "300 (default: at every update, as the shipped weights were trained)")
  mt.add_argument("--structures", default=None,
                  help="comma-separated structures of the synthetic family, among "
                  "lrjax.meta.STRUCTURES (None: lrjax.meta.FAMILY, the shipped weights')")
  mt.add_argument("--warmup-divisor", type=_positive_int, default=10,
                  help="in a draw whose horizon is given, the warmup lasts horizon // "
                  "WARMUP_DIVISOR updates (the shipped weights': 10; learned_controller's "
                  "default at inference: 20)")
  mt.add_argument("--quiet", action="store_true", help="no progress bar")
  mt.set_defaults(func=_cmd_meta_train)
  plan_cli.add_parser(sub, _positive_int, _positive_float, CLIError, _Parser)
  lst = sub.add_parser("list", help="list every name, by kind (all are accepted by compare)")
  lst.set_defaults(func=_cmd_list)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if not getattr(args, "command", None):
    print("lrjax: error: a command is required: compare, meta-train, plan, plot or list (see lrjax --help)",
          file=sys.stderr)
    return 2
  try:
    return args.func(args)
  except CLIError as e:
    print(f"lrjax: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
