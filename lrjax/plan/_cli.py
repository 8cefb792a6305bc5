"""``lrjax plan fit | predict | optimize``: loss-curve laws from the command line."""

from __future__ import annotations

import argparse
import functools
import json
import os
from typing import Any, Callable

import numpy as np

from lrjax.plan._curves import read_csv
from lrjax.plan._fit import fit
from lrjax.plan._laws import LAWS, Law
from lrjax.plan._optimize import compare, evaluate, optimize


POOR_FIT = 0.05  # a fitted curve's mean relative error above which fit warns


def _fail(cli_error: type, action: Callable[[], Any]) -> Any:
  try:
    return action()
  except (ValueError, OSError, ImportError) as e:
    text = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.filename else str(e)
    raise cli_error(text) from None


def _writable(cli_error: type, path: str) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise cli_error(f"cannot write {path!r}: folder {folder!r} does not exist")


def _table(rows: list[dict]) -> str:
  lines = [f"{'curve':<28} {'R^2':>8} {'mean rel. err':>14} {'worst rel. err':>15}"]
  for r in rows:
    lines.append(f"{r['name']:<28} {r['r2']:>8.5f} {r['mean_rel_error']:>14.5f} "
                 f"{r['worst_rel_error']:>15.5f}")
  if len(rows) > 1:
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("r2", "mean_rel_error",
                                                               "worst_rel_error")}
    lines.append(f"{'mean':<28} {mean['r2']:>8.5f} {mean['mean_rel_error']:>14.5f} "
                 f"{mean['worst_rel_error']:>15.5f}")
  return "\n".join(lines)


def _load_law(cli_error: type, path: str) -> Law:
  def read():
    with open(path) as f:
      return f.read()
  text = _fail(cli_error, read)
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise cli_error(f"{path} is not a law JSON file (lrjax plan fit writes one): {e.msg}") from None
  return _fail(cli_error, lambda: Law.from_config(config))


def _read_all(cli_error: type, paths: list) -> list:
  return [_fail(cli_error, functools.partial(read_csv, p)) for p in paths]


def _cmd_fit(args, cli_error) -> int:
  curves = _read_all(cli_error, args.curves)
  _writable(cli_error, args.output)
  if args.plot:
    _writable(cli_error, args.plot)
  law = _fail(cli_error, lambda: fit(curves, law=args.law))
  with open(args.output, "w") as f:
    json.dump(law.to_config(), f, indent=1)
  print(f"{args.law} law fitted to {len(curves)} curve(s): "
        + ", ".join(f"{k}={v:.4g}" for k, v in law.params.items()))
  rows = evaluate(law, curves)
  print(_table(rows))
  worst_fit = max(r["mean_rel_error"] for r in rows)
  if worst_fit > POOR_FIT:
    print(f"warning: the law fits these curves poorly (mean relative error up to "
          f"{worst_fit:.1%}): do not trust its predictions or plans. The laws describe a "
          "loss that falls as training goes on (a training loss, logged past the early "
          "transient), not a held-out loss that overfits or jumps.")
  print(f"wrote {args.output}")
  if args.plot:
    from lrjax.plotting import close
    close(_fail(cli_error, lambda: _plot_fit(law, curves, args.plot, [c.name for c in curves])))
    print(f"wrote {args.plot}")
  return 0


def _plot_fit(law, curves, path, fitted):
  from lrjax.plan._plots import plot_fit
  return plot_fit(law, curves, path=path, fitted=fitted)


def _cmd_predict(args, cli_error) -> int:
  law = _load_law(cli_error, args.law)
  curves = _read_all(cli_error, args.curves)
  if args.plot:
    _writable(cli_error, args.plot)
  print(_table(evaluate(law, curves)))
  if args.plot:
    from lrjax.plotting import close
    close(_fail(cli_error, lambda: _plot_fit(law, curves, args.plot, ())))
    print(f"wrote {args.plot}")
  return 0


def baselines(steps: int, peak: float, warmup: int) -> dict[str, Any]:
  """Warmup-cosine to 0 and WSD with a 20% 1-sqrt cooldown (Hägele et al.) at one peak."""
  import lrjax
  cooldown = max(1, (steps - warmup) // 5)
  return {"warmup-cosine": lrjax.warmup_cosine_decay(0.0, peak, warmup, steps),
          "wsd (20% cooldown)": lrjax.wsd(peak, warmup, steps - warmup - cooldown, cooldown)}


def _cmd_optimize(args, cli_error) -> int:
  law = _load_law(cli_error, args.law)
  for path in (args.output, args.plot):
    if path:
      _writable(cli_error, path)
  planned = _fail(cli_error, lambda: optimize(law, args.steps, args.peak, args.warmup,
                                              knots=args.knots))
  schedules = {"planned": planned, **baselines(args.steps, args.peak, args.warmup)}
  table = compare(law, schedules, args.steps)
  print(f"predicted loss after {args.steps} updates (peak {args.peak:g}, warmup {args.warmup}):")
  for name, value in table.items():
    print(f"  {name:<20} {value:.5f}")
  with open(args.output, "w") as f:
    json.dump(planned.to_config(), f)
  print(f"wrote {args.output} (the planned schedule: lrjax.from_config(json.load(...)))")
  if args.plot:
    from lrjax.plan._plots import plot_plan
    from lrjax.plotting import close
    top, _ = _fail(cli_error, lambda: plot_plan(law, schedules, args.steps, path=args.plot))
    close(top)
    print(f"wrote {args.plot}")
  return 0


def add_parser(sub: Any, positive_int: Callable, positive_float: Callable,
               cli_error: type, parser_class: type) -> None:
  """Adds ``plan`` and its three commands to the ``lrjax`` parser."""
  plan = sub.add_parser(
      "plan", help="fit a loss-curve law to logged runs, predict and plan schedules",
      description="Loss-curve laws (lrjax.plan): fit one to a few logged runs, predict the loss "
      "of any schedule, plan the schedule it predicts to end lowest. A curve is a CSV "
      "'step,lr,loss' whose first line '# lrs: JSON' gives every update's rate (an lrjax "
      "schedule config or a list; lrjax.plan.write_csv writes it), or that logs every update.")
  commands = plan.add_subparsers(dest="plan_command", metavar="COMMAND",
                                 parser_class=parser_class)
  formatter = argparse.ArgumentDefaultsHelpFormatter
  fit_p = commands.add_parser("fit", help="fit a law to logged curves", formatter_class=formatter)
  fit_p.add_argument("curves", nargs="+", metavar="CURVE.csv")
  fit_p.add_argument("--law", choices=LAWS, default="multi_power")
  fit_p.add_argument("-o", "--output", default="law.json", help="the fitted law (JSON)")
  fit_p.add_argument("--plot", default=None, help="draw the fit to this image")
  fit_p.set_defaults(func=lambda a: _cmd_fit(a, cli_error))
  pred = commands.add_parser("predict", help="how well a law predicts logged curves",
                             formatter_class=formatter)
  pred.add_argument("law", metavar="LAW.json")
  pred.add_argument("curves", nargs="+", metavar="CURVE.csv")
  pred.add_argument("--plot", default=None, help="draw the predictions to this image")
  pred.set_defaults(func=lambda a: _cmd_predict(a, cli_error))
  opt = commands.add_parser("optimize", help="plan the schedule a law predicts to end lowest",
                            formatter_class=formatter)
  opt.add_argument("law", metavar="LAW.json")
  opt.add_argument("--steps", type=positive_int, required=True, help="updates in the run")
  opt.add_argument("--peak", type=positive_float, required=True, help="the peak rate")
  opt.add_argument("--warmup", type=int, default=0, help="linear warmup updates")
  opt.add_argument("--knots", type=positive_int, default=100,
                   help="points of the planned curve after warmup")
  opt.add_argument("-o", "--output", default="planned_schedule.json",
                   help="the planned schedule's config (JSON)")
  opt.add_argument("--plot", default=None,
                   help="draw it against warmup-cosine and WSD to this image")
  opt.set_defaults(func=lambda a: _cmd_optimize(a, cli_error))

  def missing(args):
    raise cli_error("plan needs a command: fit, predict or optimize (see lrjax plan --help)")
  plan.set_defaults(func=missing)
