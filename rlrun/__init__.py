"""rlrun: config-driven reinforcement-learning experiments.

config (Hydra) -> env + agent -> loop -> TensorBoard logger + checkpoints.
"""

__version__ = "0.1.0"
