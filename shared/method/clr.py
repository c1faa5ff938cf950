"""Cyclical learning rate, `exp_range` policy (Smith 2017, "Cyclical Learning Rates for
Training Neural Networks"), as the original heads used it: a triangle between base and max
whose height decays by gamma**iteration."""
import math


def exp_range(iteration, base_lr, max_lr, step_size, gamma):
    cycle = math.floor(1 + iteration / (2.0 * step_size))
    x = abs(iteration / float(step_size) - 2 * cycle + 1)
    return base_lr + (max_lr - base_lr) * max(0.0, 1 - x) * gamma ** iteration
