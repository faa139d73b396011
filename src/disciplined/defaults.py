"""The paper's default values, each written once (Smith 2018); imports nothing.

Every module that needs one of these imports it from here, so a default changes in one place
and the CLI's help, the trial specification and the schedules always agree.
"""

from __future__ import annotations

# Cyclical momentum falls from 0.95 to 0.85 while the LR rises (Section 4.3); Adam's beta1 too.
MAX_MOMENTUM = 0.95
BASE_MOMENTUM = 0.85
MOMENTUM = (MAX_MOMENTUM, BASE_MOMENTUM)
# The paper's weight decay (its Cifar-10 and LeNet examples, Section 4.4): a trial's default
# where nothing says which optimizer trains it.
WEIGHT_DECAY = 5e-4
# A training's epochs where neither the user nor the task file says (`tune`'s final
# training, `disciplined train`).
FALLBACK_EPOCHS = 10
# The optimizers tune sets, as users write their names.
OPTIMIZER_NAMES = {"sgd": "SGD", "adamw": "AdamW"}
# Where a command that trains without a weight decay from the user starts, per optimizer: the
# first range test, the short runs of every stage before the weight-decay stage, and the final
# training when that stage cannot be afforded. One notch above the paper's for SGD (1e-3) and
# above AdamW's own default for AdamW (0.1; its decay is decoupled, multiplied by the LR, so
# SGD's values are next to nothing there). Why: the LR the short runs pick tends to lie above
# the full length's best, and on the zoo's dev half a higher weight decay is what such an LR
# needs (`make weight-decay-start`; docs/decisions.md).
START_WEIGHT_DECAY = {"sgd": 1e-3, "adamw": 1e-1}
# Where 1cycle's max LR usually lies, per optimizer: what tune centres on when nothing measured
# says more, on a plateau (no LR's short run has learned anything). There the range test's
# reading is its sweep's noise: FINDINGS' plateau transformer was flat from 1e-5 to 0.3 over
# every sweep; its best max LR was 3e-3 (1e-3 60%, 1e-2 40%, 3e-2 at chance). SGD with
# momentum: 0.1 lies in the best set of 3 of the zoo's dev half's 4 SGD grids, and is FINDINGS'
# small-data BN CNN's best. AdamW: 3e-3 lies in the best set of 3 of its 4 AdamW grids (as
# does 3e-2, at chance on FINDINGS' plateau), near schedule-free AdamW's default, 2.5e-3
# (make lr-prior, its "grid's best max LRs").
USUAL_MAX_LR = {"sgd": 0.1, "adamw": 3e-3}
# 1cycle starts one order of magnitude below its peak: min_lr = max_lr / 10 (Section 4.1).
ONE_CYCLE_DIV = 10.0
# Cyclical LRs take max_lr / 4 as their lower bound (Smith 2017, Section 3.3).
CYCLIC_DIV = 4.0
# The range test's default sweep: seven decades below 1 to ten, in 100 steps (Section 4.1).
START_LR = 1e-7
END_LR = 10.0
NUM_STEPS = 100


def start_weight_decay(optimizer: str, given: float | None = None) -> float:
    """`given` when there is one, else where `optimizer`'s weight decay starts: every command
    that trains without a weight decay from the user starts from this one value."""
    return START_WEIGHT_DECAY[optimizer] if given is None else given
