"""The NumPy greedy policy: the module's argmax, for plain and dueling heads, and it follows weight changes."""

import numpy as np
import pytest
import torch

from rlrun.networks import NumpyGreedyPolicy, QNetwork, use_numpy_greedy


@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize("hidden_sizes", [[128, 128], [16], [64, 32, 16]])
def test_numpy_greedy_equals_the_modules_argmax(dueling, hidden_sizes):
    torch.manual_seed(0)
    network = QNetwork(6, 5, hidden_sizes, dueling)
    policy = NumpyGreedyPolicy(network)
    obs = np.random.default_rng(0).standard_normal((500, 6)).astype(np.float32)
    with torch.no_grad():
        expected = network(torch.from_numpy(obs)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(policy(obs), expected)
    np.testing.assert_array_equal(policy(obs[:1]), expected[:1])  # one observation, as when acting


def test_numpy_greedy_sees_optimizer_steps_and_loaded_weights_without_a_refresh():
    torch.manual_seed(0)
    network, other = QNetwork(4, 3, [32, 32]), QNetwork(4, 3, [32, 32])
    policy = NumpyGreedyPolicy(network)
    obs = np.random.default_rng(1).standard_normal((300, 4)).astype(np.float32)
    network.load_state_dict(other.state_dict())
    with torch.no_grad():
        np.testing.assert_array_equal(policy(obs), other(torch.from_numpy(obs)).argmax(dim=1).numpy())
    optimizer = torch.optim.Adam(network.parameters(), lr=0.5, fused=True)
    network(torch.from_numpy(obs))[:, 0].sum().backward()  # push every observation away from action 0
    optimizer.step()
    with torch.no_grad():
        after = network(torch.from_numpy(obs)).argmax(dim=1).numpy()
        before = other(torch.from_numpy(obs)).argmax(dim=1).numpy()
    assert (after != before).any()  # the step changed some choices, and the NumPy view followed
    np.testing.assert_array_equal(policy(obs), after)


def test_numpy_greedy_is_used_only_on_the_cpu_for_small_layers():
    assert use_numpy_greedy(torch.device("cpu"), [128, 128])
    assert not use_numpy_greedy(torch.device("cpu"), [1024, 1024])
    assert not use_numpy_greedy(torch.device("cuda"), [128, 128])
