"""Loss-curve laws: predict a run's loss under any schedule from a few runs, and plan one.

``fit`` a law (the multi-power law of Luo et al. 2025, or the annealing law of Tissue et al.
2024) to logged curves; ``Law.predict`` the loss of any schedule; ``optimize`` the schedule the
law predicts to end lowest; ``compare`` schedules by their predicted final loss.
"""

from lrjax.plan._curves import Curve, read_csv, write_csv
from lrjax.plan._fit import fit
from lrjax.plan._laws import LAWS, PARAM_NAMES, Law, metrics
from lrjax.plan._optimize import compare, evaluate, optimize
from lrjax.plan._plots import plot_fit, plot_plan

__all__ = ["Curve", "LAWS", "PARAM_NAMES", "Law", "compare", "evaluate", "fit", "metrics",
           "optimize", "plot_fit", "plot_plan", "read_csv", "write_csv"]
