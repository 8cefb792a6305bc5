import os
import sys

import hypothesis
import jax

sys.path.insert(0, os.path.dirname(__file__))

jax.config.update("jax_numpy_rank_promotion", "raise")

hypothesis.settings.register_profile("lrjax", max_examples=60, deadline=None,
                                    derandomize=True)
hypothesis.settings.load_profile("lrjax")
