"""Package data: the learned controller's shipped weights (``learned_controller.npz``)."""
