"""Neural networks. They know tensors and shapes, nothing of agents or buffers."""

from __future__ import annotations

import math
from typing import Sequence, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_features: int, hidden_sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """ReLU (or ``activation``) trunk; its output width is ``hidden_sizes[-1]``."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_features, width), activation()]
        in_features = width
    return nn.Sequential(*layers)


class NatureCNN(nn.Module):
    """The convolutional trunk of Nature DQN (Mnih et al. 2015): three conv layers and a 512-unit layer.

    Takes stacked frames ``(batch, C, H, W)`` of pixel values 0..255 in any dtype (uint8 from the replay
    buffer, so a batch crosses to the GPU at a quarter of float32's size) and scales them to [0, 1] itself.
    ``hidden=False`` leaves out the 512-unit layer: the shared torso of the dueling head, whose two streams
    each have their own.
    """

    width = 512

    def __init__(self, in_shape: Sequence[int], hidden: bool = True):
        super().__init__()
        channels, height, width = in_shape
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():  # the flattened size for this frame size (7 x 7 x 64 at 84 x 84)
            flat = self.convs(torch.zeros(1, channels, height, width)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, self.width), nn.ReLU()) if hidden else nn.Identity()
        self.out_features = self.width if hidden else flat

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(frames.float() / 255.0))


def is_image_shape(obs_shape: Sequence[int]) -> bool:
    """Observations the CNN takes: ``(channels, height, width)``, e.g. 4 stacked 84 x 84 frames."""
    return len(obs_shape) == 3


def stream(in_features: int, width: int, out_features: int) -> nn.Sequential:
    """One stream of the dueling head: its own hidden layer, then the output (``[0]`` and ``[2]`` are the Linears)."""
    return nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, out_features))


class QNetwork(nn.Module):
    """Q-values for every discrete action, optionally with a dueling head.

    The trunk is an MLP over the flattened observation (``network="mlp"``) or the Nature-DQN CNN over
    stacked frames (``network="cnn"``), then a linear layer to the Q-values.

    The dueling head is Wang et al. (2016)'s: a shared torso, then a value stream and an advantage stream,
    each with its own fully connected hidden layer, combined as ``Q = V + A - mean(A)`` (subtracting the mean
    makes V and A identifiable). The torso is the MLP's hidden layers but the last (none for one hidden layer)
    and each stream's hidden layer has the last width; for the CNN the torso is the conv layers and each stream
    has its own 512-unit layer, as in the paper.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: Sequence[int],
        dueling: bool = False,
        network: str = "mlp",
        obs_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        # the MLP trunk's Linear layers, called through F.linear: the same arithmetic without nn.Module's call
        # machinery, a dozen calls per update (README, Performance); the CNN trunk is called as a module
        hidden_layers: list[nn.Linear] = []
        self.trunk: nn.Module
        if network == "cnn":
            assert obs_shape is not None, "the CNN reads the shape of the stacked frames"
            cnn = NatureCNN(obs_shape, hidden=not dueling)
            self.trunk, width, stream_width = cnn, cnn.out_features, NatureCNN.width
        else:
            shared = hidden_sizes[:-1] if dueling else hidden_sizes
            trunk = mlp(obs_dim, shared)
            self.trunk = trunk  # same parameter names as before the CNN existed
            hidden_layers = [layer for layer in trunk if isinstance(layer, nn.Linear)]
            width, stream_width = (shared[-1] if shared else obs_dim), hidden_sizes[-1]
        self.flatten = network != "cnn"
        self.dueling = dueling
        if dueling:
            self.value = stream(width, stream_width, 1)
            self.advantage = stream(width, stream_width, n_actions)
        else:
            self.head = nn.Linear(width, n_actions)
        self.hidden_layers = hidden_layers

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.flatten:
            features = obs.flatten(start_dim=1)
            for layer in self.hidden_layers:
                features = F.linear(features, layer.weight, layer.bias).relu()
        else:
            features = self.trunk(obs)
        if not self.dueling:
            return F.linear(features, self.head.weight, self.head.bias)
        advantage = self.stream_output(self.advantage, features)
        value = self.stream_output(self.value, features)
        return value + advantage - advantage.mean(dim=1, keepdim=True)

    def named_linears(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The MLP's Linear layers by module name (``trunk.0``, ..., then ``head`` or ``value.0``, ``value.2``,
        ``advantage.0``, ``advantage.2``), in forward order, as (weight, bias)."""
        return {
            name: (module.weight, module.bias) for name, module in self.named_modules() if isinstance(module, nn.Linear)
        }

    @staticmethod
    def stream_output(layers: nn.Sequential, features: torch.Tensor) -> torch.Tensor:
        hidden, output = cast(nn.Linear, layers[0]), cast(nn.Linear, layers[2])  # stream(): Linear, ReLU, Linear
        return F.linear(F.linear(features, hidden.weight, hidden.bias).relu(), output.weight, output.bias)


def mlp_with_head(
    in_features: int, hidden_sizes: Sequence[int], out_features: int, activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """ReLU (or ``activation``) trunk and a linear output layer: policy logits, a Gaussian mean or a state value."""
    return nn.Sequential(mlp(in_features, hidden_sizes, activation), nn.Linear(hidden_sizes[-1], out_features))


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def orthogonal_mlp(
    in_features: int, hidden_sizes: Sequence[int], out_features: int, activation: str = "tanh", output_gain: float = 1.0
) -> nn.Sequential:
    """An MLP with orthogonal weights and zero biases, the actor-critic initialisation of the PPO papers' code.

    Hidden layers get gain sqrt(2); the output layer ``output_gain``: 0.01 for a policy head (near-uniform
    logits, a Gaussian mean near 0 at the start), 1 for a value head.
    """
    network = mlp_with_head(in_features, hidden_sizes, out_features, ACTIVATIONS[activation])
    linears = linear_layers(network)
    for layer in linears:
        gain = output_gain if layer is linears[-1] else math.sqrt(2.0)
        nn.init.orthogonal_(layer.weight, gain=gain)
        nn.init.zeros_(layer.bias)
    return network


class GaussianPolicyNetwork(nn.Module):
    """Mean of a diagonal Gaussian over Box actions; the log standard deviation is learned but state-free.

    A state-free spread is the usual choice for REINFORCE on continuous control: it is stable and lets
    exploration shrink as the policy becomes sure of itself.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], init_log_std: float = 0.0):
        super().__init__()
        self.mean = mlp_with_head(obs_dim, hidden_sizes, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean(obs.flatten(start_dim=1))


class NumpyMLP:
    """The forward pass of a CPU MLP (Linear layers, one activation between them) in plain NumPy, for acting on a
    few observations at a time.

    For one step's observations (one, or one per sub-env) through a small MLP, ``nn.Module.__call__`` and torch's
    per-op dispatch cost several times the arithmetic. The weights are NumPy *views* of the layers' parameters
    (shared memory), so optimizer steps and ``load_state_dict`` (both in place) are seen at once and nothing is
    refreshed. NumPy's BLAS sums in another order than torch's: the outputs equal the module's up to float32
    rounding, not bit for bit.
    """

    # Largest batch x layer product (multiply-adds) computed here. Above it OpenBLAS goes multi-threaded,
    # which on a busy small machine is many times slower than torch (README, Performance).
    MAX_MULTIPLY_ADDS = 2**18

    def __init__(self, linears: Sequence[nn.Linear], activation: str = "relu"):
        if any(layer.weight.device.type != "cpu" for layer in linears):
            raise ValueError("a NumPy forward needs a network on the CPU; use the module on other devices")
        if activation not in ("relu", "tanh"):
            raise ValueError(f"a NumPy forward has relu and tanh activations, not {activation!r}")
        self.activation = activation
        # (in, out) views of the (out, in) weights: x @ W.T without a copy
        self.layers = [(layer.weight.detach().numpy().T, layer.bias.detach().numpy()) for layer in linears]
        largest_layer = max(weight.size for weight, _ in self.layers)
        self.max_batch = self.MAX_MULTIPLY_ADDS // largest_layer  # 0 for nets too wide to gain anything

    def pays_for(self, batch_size: int) -> bool:
        return batch_size <= self.max_batch

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The outputs in float32, as the module computes them: float64 observations are cast first, like the
        torch path's ``as_tensor(..., dtype=float32)``."""
        x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        *hidden, (head_weight, head_bias) = self.layers
        for weight, bias in hidden:
            x = x @ weight
            x += bias
            if self.activation == "relu":
                np.maximum(x, 0.0, out=x)
            else:
                np.tanh(x, out=x)
        return x @ head_weight + head_bias


def linear_layers(network: nn.Module) -> list[nn.Linear]:
    """A plain MLP's Linear layers in forward order (``mlp_with_head``, ``orthogonal_mlp``)."""
    return [module for module in network.modules() if isinstance(module, nn.Linear)]


class NumpyGreedyPolicy:
    """``argmax_a Q(obs, a)`` of a CPU :class:`QNetwork` through its :class:`NumpyMLP`, for acting one step at a
    time.

    Plain heads only: a dueling head's ``V + A - mean(A)`` has the argmax of ``A`` in exact arithmetic, but
    not always in float32, where the module rounds near-ties differently; greedy actions must not depend on
    which path (batch size, device) computed them.
    """

    def __init__(self, network: QNetwork):
        if not network.flatten or network.dueling:
            raise ValueError(
                "NumpyGreedyPolicy computes plain-head MLP Q-networks only; call the module for the "
                "CNN and the dueling head"
            )
        self.mlp = NumpyMLP([*network.hidden_layers, network.head], "relu")

    def pays_for(self, batch_size: int) -> bool:
        return self.mlp.pays_for(batch_size)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values in float32, equal to the module's up to float32 rounding (:class:`NumpyMLP`)."""
        return self.mlp(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.q_values(obs).argmax(axis=1)


class ActorCriticNetworks(nn.Module):
    """Separate policy and value MLPs (orthogonal init) and, for Box actions, a learned state-independent log std.

    ``policy(obs)`` gives the logits (Discrete) or the Gaussian mean (Box); ``value(obs)`` has shape ``(batch, 1)``.
    ``policy_output`` and ``state_value`` compute the same through ``F.linear`` on the layers' own parameters, without
    nn.Module's call machinery (a dozen module calls per minibatch otherwise; same arithmetic, same gradients).
    """

    def __init__(
        self,
        obs_dim: int,
        policy_outputs: int,
        hidden_sizes: Sequence[int],
        activation: str = "tanh",
        gaussian: bool = False,
        init_log_std: float = 0.0,
    ):
        super().__init__()
        self.policy = orthogonal_mlp(obs_dim, hidden_sizes, policy_outputs, activation, output_gain=0.01)
        self.value = orthogonal_mlp(obs_dim, hidden_sizes, 1, activation, output_gain=1.0)
        self.log_std = nn.Parameter(torch.full((policy_outputs,), float(init_log_std))) if gaussian else None
        self.activation = torch.tanh if activation == "tanh" else torch.relu
        self.policy_layers, self.value_layers = linear_layers(self.policy), linear_layers(self.value)

    def lean_forward(self, layers: Sequence[nn.Linear], obs: torch.Tensor) -> torch.Tensor:
        *hidden, head = layers
        for layer in hidden:
            obs = self.activation(F.linear(obs, layer.weight, layer.bias))
        return F.linear(obs, head.weight, head.bias)

    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """``policy(obs)``: logits or the Gaussian mean."""
        return self.lean_forward(self.policy_layers, obs)

    def state_value(self, obs: torch.Tensor) -> torch.Tensor:
        """``value(obs).squeeze(1)``: V(s), shape ``(batch,)``."""
        return self.lean_forward(self.value_layers, obs).squeeze(1)


class FlatParameters:
    """A module's parameters re-pointed at slices of one contiguous buffer, and their gradients at slices of a second.

    Why: for MLPs of a few thousand weights a minibatch update is mostly per-tensor overhead. Over one flat
    tensor, clipping the gradient norm is one norm and one multiply, and an optimizer step handles one tensor
    rather than a dozen. ``flat`` is the parameter to give the optimizer: its ``.grad`` is the gradient buffer,
    which backward fills in place (autograd adds into an existing ``.grad`` rather than replacing it), so every
    module parameter keeps reading its slice. Clear gradients with :meth:`zero_grad`, never by setting a
    parameter's ``.grad`` to None, which would cut that parameter off from the buffer. Build it after the module
    is on its device (``.to()`` would allocate new tensors). ``load_state_dict`` and ``deepcopy`` of the module
    work as usual: the first copies into the slices, the second copies out of them.
    """

    def __init__(self, parameters: Sequence[nn.Parameter]):
        self.parameters = list(parameters)
        first = self.parameters[0]
        total = sum(param.numel() for param in self.parameters)
        self.flat = nn.Parameter(torch.empty(total, dtype=first.dtype, device=first.device))
        self.flat.grad = torch.zeros_like(self.flat)
        self.sizes = [param.numel() for param in self.parameters]
        offset = 0
        for param, size in zip(self.parameters, self.sizes):
            self.flat.data[offset : offset + size].copy_(param.detach().reshape(-1))
            param.data = self.flat.data[offset : offset + size].view_as(param)
            param.grad = self.flat.grad[offset : offset + size].view_as(param)
            offset += size

    def zero_grad(self) -> None:
        assert self.flat.grad is not None
        self.flat.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """``nn.utils.clip_grad_norm_`` over all the parameters (one L2 norm of everything, scaled down to
        ``max_norm`` when above it, with its 1e-6); returns the norm before clipping."""
        grad = self.flat.grad
        assert grad is not None
        norm = torch.linalg.vector_norm(grad)
        grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))
        return norm

    def flat_optimizer_state(self, state: dict) -> dict:
        """An optimizer state dict saved over the separate parameters (checkpoints from before the flat buffer)
        as the same state over ``flat``: each per-parameter tensor (Adam's moments, RMSprop's average)
        concatenated in parameter order. A state already over one tensor is returned as it is."""
        groups = state["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.parameters) or len(self.parameters) == 1:
            return state
        ids = groups[0]["params"]
        per_param = [state["state"].get(index, {}) for index in ids]
        merged: dict = {}
        if all(per_param):
            for key, value in per_param[0].items():
                if torch.is_tensor(value) and value.shape == self.parameters[0].shape:
                    merged[key] = torch.cat([entry[key].reshape(-1) for entry in per_param])
                else:  # the step count (and other scalars), equal for parameters that are stepped together
                    merged[key] = value.clone() if torch.is_tensor(value) else value
        return {"state": {0: merged} if merged else {}, "param_groups": [{**groups[0], "params": [0]}]}


class StackedQNetwork(nn.Module):
    """K MLP :class:`QNetwork` s of one architecture as batched layers: a leading member axis on every weight.

    ``forward`` takes ``(K, batch, *obs_shape)`` and gives ``(K, batch, n_actions)``; each member's Q-values are
    its own network's (``torch.baddbmm`` keeps the members' matmuls apart, so no member's numbers enter another's).
    Building it re-points every member network's parameters at its slice of the stacked ones (shared memory): an
    optimizer step on the stack is seen by each member at once, and a member's ``load_state_dict`` writes into
    the stack, so members still evaluate, export and checkpoint as plain QNetworks.
    """

    def __init__(self, members: Sequence[QNetwork]):
        super().__init__()
        first = members[0]
        if not all(member.flatten for member in members):
            raise ValueError("StackedQNetwork stacks MLP Q-networks only; the CNN has no member axis yet")
        names = [name for name, _ in first.named_parameters()]
        self.stacked = nn.ParameterDict()
        for name in names:
            per_member = [dict(member.named_parameters())[name] for member in members]
            stacked = nn.Parameter(torch.stack([param.detach() for param in per_member]).contiguous())
            for index, param in enumerate(per_member):
                param.data = stacked.data[index]  # a view: the member reads and writes the stack
            self.stacked[name.replace(".", "__")] = stacked

        self.linear_names = list(first.named_linears())
        self.layers = QNetworkGradients.of_layers(self.named_linears(), stacked=True, gradients=False)

    def named_linears(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``QNetwork.named_linears`` of the stack: each layer's stacked (weight, bias)."""
        return {
            name: (self.stacked_parameter(f"{name}.weight"), self.stacked_parameter(f"{name}.bias"))
            for name in self.linear_names
        }

    def gradients(self) -> QNetworkGradients:
        """The hand-written backward over the stack, each stacked parameter given a ``.grad`` to write into."""
        return QNetworkGradients.of_layers(self.named_linears(), stacked=True, gradients=True)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers.forward(obs)[0]

    def stacked_parameter(self, name: str) -> nn.Parameter:
        """The stacked parameter of a QNetwork parameter name (``trunk.0.weight``)."""
        return self.stacked[name.replace(".", "__")]


class MemberLinear:
    """A linear layer with a leading member axis, and the tensors its gradients are written to.

    ``weight`` ``(K, out, in)``, ``bias`` ``(K, out)``; a single network is ``K = 1`` through ``unsqueeze(0)`` views.
    ``backward`` writes the gradients with ``out=`` into ``weight_grad``/``bias_grad`` (the parameters' own
    ``.grad`` or views of it), so nothing is allocated for them and no zeroing is needed between steps. Without
    gradient tensors (a target network) the layer only runs forward.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        weight_grad: torch.Tensor | None = None,
        bias_grad: torch.Tensor | None = None,
    ):
        self.weight, self.bias = weight, bias
        self.weight_grad, self.bias_grad = weight_grad, bias_grad

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` per member: x ``(K, B, in)`` to ``(K, B, out)``; ``baddbmm`` keeps the members apart."""
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def backward(self, x: torch.Tensor, grad_out: torch.Tensor, input_grad: bool) -> torch.Tensor | None:
        """Store dL/dW and dL/db given the layer's input ``x`` and dL/d(output); return dL/dx if asked."""
        assert self.weight_grad is not None and self.bias_grad is not None, "a forward-only layer"
        torch.bmm(grad_out.transpose(1, 2), x, out=self.weight_grad)
        torch.sum(grad_out, dim=1, out=self.bias_grad)
        return torch.bmm(grad_out, self.weight) if input_grad else None


def relu_backward(grad_output: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """dL/d(input) of a ReLU from dL/d(output) and its output: zero where the output is (one kernel, as autograd's)."""
    return torch.ops.aten.threshold_backward(grad_output, output, 0.0)


def member_linear(weight: torch.Tensor, bias: torch.Tensor, stacked: bool, gradients: bool) -> MemberLinear:
    """A :class:`MemberLinear` over a parameter pair. ``stacked``: the parameters already have the member axis;
    otherwise they are one network's (``K = 1``). ``gradients``: give each parameter a ``.grad`` to write into."""
    if not gradients:
        return MemberLinear(weight, bias) if stacked else MemberLinear(weight.unsqueeze(0), bias.unsqueeze(0))
    for param in (weight, bias):
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    assert weight.grad is not None and bias.grad is not None
    if stacked:
        return MemberLinear(weight, bias, weight.grad, bias.grad)
    return MemberLinear(weight.unsqueeze(0), bias.unsqueeze(0), weight.grad.unsqueeze(0), bias.grad.unsqueeze(0))


class QNetworkGradients:
    """The MLP Q-network's forward and backward written out by hand, over a leading member axis.

    Why: a DQN update of a small MLP is mostly the autograd engine's per-node overhead, not arithmetic. Keeping the
    layer inputs of one forward and multiplying the chain rule through them directly (a dozen matmuls, no graph)
    gives autograd's gradients up to float rounding (tests/test_dqn.py checks every head against autograd).
    The same code serves a single network (K = 1) and a population's stacked networks; members never mix, since
    every matmul and every sum runs within one member. Call it under ``torch.no_grad()``: the parameters require
    gradients, and any op on them would otherwise record a graph nobody uses.
    The gradient tensors are the parameters' ``.grad`` at construction (or views of them): setting a ``.grad`` to
    None afterwards (``zero_grad()``'s default) or moving the parameters (``param.data = ...``, as stacking a
    network into a population does) cuts this object off from them; build a new one instead.
    """

    def __init__(
        self,
        hidden: Sequence[MemberLinear],
        head: MemberLinear | None = None,
        value: Sequence[MemberLinear] = (),
        advantage: Sequence[MemberLinear] = (),
    ):
        self.hidden, self.head = list(hidden), head
        self.value, self.advantage = list(value), list(advantage)

    @classmethod
    def of(cls, network: QNetwork) -> QNetworkGradients:
        """One MLP QNetwork's (K = 1), with a ``.grad`` on each parameter for backward to write into."""
        if not network.flatten:
            raise ValueError("QNetworkGradients is the MLP's backward; the CNN keeps autograd")
        return cls.of_layers(network.named_linears(), stacked=False, gradients=True)

    @classmethod
    def of_layers(
        cls, linears: dict[str, tuple[torch.Tensor, torch.Tensor]], stacked: bool, gradients: bool
    ) -> QNetworkGradients:
        """From a QNetwork's Linear parameter pairs by role (``QNetwork.named_linears``)."""

        def layer(name: str) -> MemberLinear:
            return member_linear(*linears[name], stacked=stacked, gradients=gradients)

        hidden = [layer(name) for name in linears if name.startswith("trunk.")]
        if "head" in linears:
            return cls(hidden, head=layer("head"))
        return cls(
            hidden, value=[layer("value.0"), layer("value.2")], advantage=[layer("advantage.0"), layer("advantage.2")]
        )

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Q-values ``(K, B, n_actions)`` of observations ``(K, B, *obs_shape)``, and what ``backward`` needs:
        the input of every layer (a ReLU's output is the next layer's input, and its derivative is ``output > 0``)."""
        features = obs.flatten(start_dim=2)
        kept = [features]
        for layer in self.hidden:
            features = layer(features).relu_()
            kept.append(features)
        if self.head is not None:
            return self.head(features), kept
        value_hidden = self.value[0](features).relu_()
        advantage_hidden = self.advantage[0](features).relu_()
        kept += [value_hidden, advantage_hidden]
        value, advantage = self.value[1](value_hidden), self.advantage[1](advantage_hidden)
        return value + advantage - advantage.mean(dim=2, keepdim=True), kept

    def backward(self, kept: list[torch.Tensor], grad_q: torch.Tensor) -> None:
        """Write dL/d(every parameter) into the gradient tensors, given dL/dQ ``(K, B, n_actions)``."""
        has_trunk = bool(self.hidden)
        if self.head is not None:
            features = kept[-1]
            grad = self.head.backward(features, grad_q, input_grad=has_trunk)
        else:
            value_hidden, advantage_hidden = kept[-2], kept[-1]
            features = kept[-3]
            # Q = V + A - mean(A): dV is the sum of dQ over actions, dA is dQ less its mean over actions
            grad_value = grad_q.sum(dim=2, keepdim=True)
            grad_advantage = grad_q - grad_q.mean(dim=2, keepdim=True)
            grad_value_hidden = self.value[1].backward(value_hidden, grad_value, input_grad=True)
            grad_advantage_hidden = self.advantage[1].backward(advantage_hidden, grad_advantage, input_grad=True)
            assert grad_value_hidden is not None and grad_advantage_hidden is not None
            grad_from_value = self.value[0].backward(
                features, relu_backward(grad_value_hidden, value_hidden), has_trunk
            )
            grad = self.advantage[0].backward(
                features, relu_backward(grad_advantage_hidden, advantage_hidden), has_trunk
            )
            if grad is not None and grad_from_value is not None:
                grad.add_(grad_from_value)
        for index in range(len(self.hidden) - 1, -1, -1):
            assert grad is not None
            grad = self.hidden[index].backward(kept[index], relu_backward(grad, kept[index + 1]), input_grad=index > 0)
