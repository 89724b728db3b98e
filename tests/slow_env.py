"""CartPole with a pause in every step, for tests that must stop or kill a run part-way at a predictable moment.

``env=gym env.id=tests.slow_env:SlowCartPole-v1`` (Gymnasium imports the module named before the colon).
"""

import time

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

STEP_PAUSE_S = 0.002  # 1,000 steps take at least 2 s


class SlowCartPole(CartPoleEnv):
    def step(self, action):
        time.sleep(STEP_PAUSE_S)
        return super().step(action)


gym.register(id="SlowCartPole-v1", entry_point=SlowCartPole, max_episode_steps=500, reward_threshold=475.0)
