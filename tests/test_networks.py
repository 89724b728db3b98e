"""The Nature-DQN CNN: output shapes, pixel scaling inside the net, and how DQN picks CNN or MLP."""

import pytest
import torch

from rlrun.agents.dqn import resolve_network
from rlrun.errors import ConfigError
from rlrun.networks import NatureCNN, QNetwork


@pytest.mark.parametrize("dueling", [False, True])
def test_cnn_q_network_gives_one_q_value_per_action(dueling):
    torch.manual_seed(0)
    net = QNetwork(4 * 84 * 84, n_actions=6, hidden_sizes=[128], dueling=dueling, network="cnn",
                   obs_shape=(4, 84, 84))
    frames = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    q = net(frames)
    assert q.shape == (5, 6) and q.dtype == torch.float32
    assert isinstance(net.trunk, NatureCNN)
    assert net.trunk.fc[0].in_features == 7 * 7 * 64  # Nature DQN's flattened size at 84 x 84
    if dueling:  # Q = V + A - mean(A): the mean over actions is V
        features = net.trunk(frames)
        torch.testing.assert_close(q.mean(dim=1, keepdim=True), net.value(features))


def test_cnn_scales_uint8_pixels_to_unit_range_itself():
    torch.manual_seed(0)
    cnn = NatureCNN((2, 36, 36))
    frames = torch.randint(0, 256, (3, 2, 36, 36), dtype=torch.uint8)
    manual = cnn.fc(cnn.convs(frames.float() / 255.0))
    torch.testing.assert_close(cnn(frames), manual)
    torch.testing.assert_close(cnn(frames.float()), manual)  # float pixel values 0..255 give the same


def test_network_is_picked_from_the_observation_shape_or_the_key():
    assert resolve_network("auto", (4, 84, 84)) == "cnn"
    assert resolve_network("auto", (8,)) == "mlp"
    assert resolve_network("mlp", (4, 84, 84)) == "mlp"
    with pytest.raises(ConfigError, match=r"agent\.network=cnn"):
        resolve_network("cnn", (8,))
