import collections
import contextlib
import os
import shutil
import sys
import tempfile

# 8 CPU devices for the multi-device tests; must be set before JAX starts.
#
# The suite is compile-bound: most tests run a few updates of a program they just compiled. So
# by default a test compiles with `jax_disable_most_optimizations` (LLVM at -O0, its expensive
# passes off: a fifth to a third less compile time), and a test marked `optimized` (one that
# trains long enough for faster code to pay: the digits CNN, the char LM, the CNN examples)
# compiles with LLVM at -O1 (`--xla_backend_optimization_level=1`, the code as fast as at the default -O2 on
# these tasks, compiled faster). Neither changes the HLO, which the XLA passes make before LLVM
# runs (`test_step_cost.py` reads it), nor float results: XLA's CPU default keeps fast math off.
#
# XLA's CPU backend also has two code generators: its MLIR fusion emitters (the default) and
# the older LLVM IR emitters (`--xla_cpu_use_fusion_emitters=false`), which compile the
# suite's programs in about two thirds of the time (the whole suite, back to back with the
# default emitters on the 2-core machine on 2026-12-06: 324 s of pytest against 463 s, 297 s
# against 475 s). They lower some transcendental functions differently: exp, tanh, cos and
# sigmoid differ from the default's in the last few ulps on a share of inputs (2e-6 relative
# at most for exp; log, pow and sums alike), so a test compiled this way checks
# lrjax's arithmetic to float32 rounding, not the default backend's last bit. The kernels an
# update compiles to are the same (`benchmarks/step_overhead.py`'s 14 variants: kernels and
# O(params) kernels equal; 5-12 fewer instructions inside the fusions). The flag is used
# only where this jaxlib knows it (a subprocess tries it once a run: XLA aborts on an unknown
# flag); LRJAX_TEST_XLA_OPTIMIZE=1 compiles every test as users do, the default emitters included.
OPTIMIZE_ALL = os.environ.get("LRJAX_TEST_XLA_OPTIMIZE") == "1"
XLA_TEST_FLAGS = "--xla_force_host_platform_device_count=8"
if not OPTIMIZE_ALL and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  XLA_TEST_FLAGS += " --xla_backend_optimization_level=1"
_FAST_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
_EMITTERS_ENV = "LRJAX_TEST_LEGACY_EMITTERS"  # the probe's answer, for the xdist workers


def _jaxlib_knows(flag):
  import subprocess
  env = dict(os.environ, XLA_FLAGS=flag, JAX_PLATFORMS="cpu")
  probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env,
                         capture_output=True)
  return probe.returncode == 0


if not OPTIMIZE_ALL and "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
  if _EMITTERS_ENV not in os.environ:
    os.environ[_EMITTERS_ENV] = "1" if _jaxlib_knows(_FAST_EMITTERS) else "0"
  if os.environ[_EMITTERS_ENV] == "1":
    XLA_TEST_FLAGS += " " + _FAST_EMITTERS
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_TEST_FLAGS).strip()
# Every subprocess a test starts (the multi-process workers, the multi-host example's processes,
# the CLI smoke test) imports the lrjax under test, this checkout, not an installed copy.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
if not OPTIMIZE_ALL:  # the subprocesses too (the multi-process workers, the CLI smoke test)
  os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import hypothesis  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

jax.config.update("jax_numpy_rank_promotion", "raise")

hypothesis.settings.register_profile("lrjax", max_examples=60, deadline=None,
                                    derandomize=True)
hypothesis.settings.load_profile("lrjax")


# Slowest modules first: pytest-xdist (--dist loadscope) hands whole modules to the workers in
# collection order, so the long ones start at once and the short ones fill in at the end instead
# of one worker finishing a long module alone (the order of `--durations` on the 2-core machine).
_SLOW_FIRST = ("test_multiprocess.py", "test_examples_and_docs.py", "test_learned.py",
               "test_plan.py", "test_tasks.py", "test_compare.py", "test_common.py", "test_stateful_rules.py",
               "test_peer_suites.py", "test_values.py", "test_stateful.py", "test_step_cost.py")


@contextlib.contextmanager
def optimized(on=True):
  """Programs compiled inside it get LLVM's passes (see the top of this file): for a module
  fixture that trains long (fixtures run between tests, outside a test's mark)."""
  default = jax.config.read("jax_disable_most_optimizations")
  if on:
    jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", default)


@pytest.fixture(autouse=True)
def _xla_optimization(request):
  """Compiles an `optimized` test's programs with LLVM's passes on, every other one's without
  (see the top of this file)."""
  with optimized(request.node.get_closest_marker("optimized") is not None):
    yield


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(_SLOW_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: module order kept


# One compilation cache for the whole run, shared by the pytest-xdist workers: a program that
# several tests build alike (the same step of the same case, say) is compiled once. The folder
# is made by the first process of the run (the controller under xdist, before it starts the
# workers, which inherit its environment) and removed at its end, so every run starts cold, as
# on a fresh clone.
_CACHE_ENV = "LRJAX_TEST_COMPILATION_CACHE"
_own_cache = False


def _atomic_cache_writes():
  """Makes JAX's file cache write each entry whole: to a temporary file, then renamed into
  place. JAX writes the entry's file in place (``LRUCache.put``, when no size limit is set), so
  a worker compiling the same program at that moment can read it half written (shown with
  JAX's own class on 2026-12-06: a reader polling for the file got a partial entry 300 times
  in 300), and pytest turns the cache's warning into a failure. False where this JAX has no
  such class: then each worker keeps its own cache."""
  try:
    from jax._src import lru_cache
    suffix, original = lru_cache._CACHE_SUFFIX, lru_cache.LRUCache.put
  except (ImportError, AttributeError):
    return False

  def put(self, key, value):
    if getattr(self, "eviction_enabled", True):  # a size limit: JAX holds a file lock
      return original(self, key, value)
    path = os.path.join(str(self.path), f"{key}{suffix}")
    if os.path.exists(path):
      return None
    fd, tmp = tempfile.mkstemp(dir=str(self.path), prefix=".partial-")
    with os.fdopen(fd, "wb") as f:
      f.write(value)
    os.replace(tmp, path)  # atomic on one file system: a reader sees no file or all of it
    return None

  lru_cache.LRUCache.put = put
  return True


def pytest_configure(config):
  global _own_cache
  if _CACHE_ENV not in os.environ:
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="lrjax-test-xla-cache-")
    _own_cache = True
  cache = os.environ[_CACHE_ENV]
  if not _atomic_cache_writes():
    cache = os.path.join(cache, os.environ.get("PYTEST_XDIST_WORKER", "main"))
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# What a failing test compiled and what it loaded from the persistent cache, and the tests its
# process ran just before it, in its report: where a wrong program came from is the first thing
# to know about a failure seen once in many runs (it found the one of 2026-12-06: a program
# from jax.jit's in-memory cache, traced for another schedule class; tests/README.md). Counted
# from JAX's monitoring events (no logging on the hot path).
_COMPILE_EVENTS = {"/jax/compilation_cache/cache_hits": "persistent-cache hits",
                   "/jax/compilation_cache/cache_misses": "persistent-cache misses"}
_compile_counts: dict = {}


def _count_compile_event(event, **kwargs):
  if event in _COMPILE_EVENTS:
    _compile_counts[event] = _compile_counts.get(event, 0) + 1


jax.monitoring.register_event_listener(_count_compile_event)


_recent_tests: collections.deque = collections.deque(maxlen=8)  # for a failing test's report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
  item._lrjax_compile_counts = dict(_compile_counts)
  item._lrjax_recent_tests = list(_recent_tests)
  _recent_tests.append(item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
  outcome = yield
  report = outcome.get_result()
  if report.failed and hasattr(item, "_lrjax_compile_counts"):
    start = item._lrjax_compile_counts
    counts = ", ".join(f"{label} {_compile_counts.get(e, 0) - start.get(e, 0)}"
                       for e, label in _COMPILE_EVENTS.items())
    report.sections.append(("lrjax: programs of this test, its setup included", counts))
    report.sections.append(("lrjax: the tests this process ran just before it",
                            "\n".join(item._lrjax_recent_tests) or "none"))


def pytest_unconfigure(config):
  if _own_cache:
    shutil.rmtree(os.environ.pop(_CACHE_ENV), ignore_errors=True)


def run_cli(capsys, *args):
  """``lrjax ARGS`` run in this process through ``lrjax.cli.main``: its exit code and output,
  as a ``subprocess.CompletedProcess`` (one real subprocess test covers ``python -m lrjax``)."""
  import subprocess
  from lrjax import cli
  capsys.readouterr()  # what the test printed before
  try:
    code = cli.main(list(args))
  except SystemExit as e:  # argparse's usage errors, --help and --version
    code = e.code
  out = capsys.readouterr()
  return subprocess.CompletedProcess(["lrjax", *args], code, out.out, out.err)


def assert_same_run(a, b):
  """Two runs of the same program on the same inputs: bitwise equal where the backend is
  deterministic (the CPU; a GPU with XLA_FLAGS=--xla_gpu_deterministic_ops=true), else equal
  to float32 rounding (GPU reductions may add in another order: 4e-6 seen on an H200)."""
  import chex
  deterministic = (jax.default_backend() == "cpu" or
                   "--xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", ""))
  if deterministic:
    chex.assert_trees_all_equal(a, b)
  else:
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-7)
