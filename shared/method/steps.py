"""The original's training steps, by the names its write-up uses.

step4: heads on the known classes; step6: again with the step-4 pseudo-labels and the unknown
class; step7: again with the step-6 pseudo-labels. A step's pseudo set comes from the step before.
"""
import os

STEPS = ("step4", "step6", "step7")
PSEUDO_SOURCE = {"step6": "step4", "step7": "step6"}
# Per-fold pseudo-labels (services/head/fold_pseudo.py): each head's own set, beside the shared
# set, and each head's test probabilities, which the next step's per-fold sets come from.
FOLD_PROBS = "test_fold_probs.npz"


def folds_path(pseudo):
    """The per-fold sets' file beside the shared set `pseudo` (pseudo/step6.csv -> pseudo/step6.folds.csv)."""
    return os.path.splitext(pseudo)[0] + ".folds.csv"
