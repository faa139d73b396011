import os

import torch
from hypothesis import settings

# CI machines are shared and slow at times: no per-example deadline; CI runs a fixed
# example sequence so a red build can be replayed exactly.
settings.register_profile("dev", deadline=None, max_examples=60)
settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=2000)
default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or default)

torch.set_num_threads(min(2, torch.get_num_threads()))
