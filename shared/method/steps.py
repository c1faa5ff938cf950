"""The original's training steps, by the names its write-up uses.

step4: heads on the known classes; step6: again with the step-4 pseudo-labels and the unknown
class; step7: again with the step-6 pseudo-labels. A step's pseudo set comes from the step before.
"""
STEPS = ("step4", "step6", "step7")
PSEUDO_SOURCE = {"step6": "step4", "step7": "step6"}
