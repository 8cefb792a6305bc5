"""ES from the shipped weights, one draw an iteration (benchmarks/README.md, item 22)."""
import sys
from lrjax import meta
seed = int(sys.argv[1]); lr = float(sys.argv[2]); iters = int(sys.argv[3]); out = sys.argv[4]
structures = tuple(meta.FAMILY) + ("deep",)
family = {n: meta.STRUCTURES[n] for n in structures}
res = meta.meta_train(iterations=iters, pairs=8, sigma=0.02, learning_rate=lr, seed=seed,
                      init_weights=meta.load_weights(), task_family=family,
                      checkpoint=out + ".ckpt.npz", validate_every=50,
                      validation=meta.validation_draws(48, structures=structures),
                      progress=False, log=lambda l: print(l, flush=True), warmup_divisor=20)
meta.save_weights(out, res.weights, seed=seed, iterations=iters, learning_rate=lr,
                  best_iteration=res.best_iteration, note="fine-tuned from the shipped weights")
print("best", res.best_iteration, "min", res.wall_time / 60, flush=True)
