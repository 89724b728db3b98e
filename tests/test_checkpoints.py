"""Checkpoint files: their mode follows the umask, the rename is made durable, failed writes leave nothing behind."""

import os
import stat

import pytest
import torch

from rlrun.checkpoints import load_checkpoint, save_checkpoint
from rlrun.errors import ConfigError
from rlrun.networks import QNetwork

PAYLOAD = {"config": {}, "agent": {"weights": torch.arange(4.0)}}


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the previous one back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_checkpoint_mode_honours_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "best.pt"
    save_checkpoint(path, PAYLOAD)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    save_checkpoint(path, PAYLOAD)  # replacing an existing checkpoint: the same
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert torch.equal(load_checkpoint(path)["agent"]["weights"], torch.arange(4.0))


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint(tmp_path / "last.pt", PAYLOAD)
    assert events == ["fsync file", "rename", "fsync folder"]


def test_a_dueling_checkpoint_from_before_the_papers_streams_is_refused_clearly(tmp_path):
    # Before: value and advantage were single Linear layers on the last shared hidden layer.
    old_online = {"trunk.0.weight": torch.zeros(16, 4), "trunk.0.bias": torch.zeros(16),
                  "value.weight": torch.zeros(1, 16), "value.bias": torch.zeros(1),
                  "advantage.weight": torch.zeros(2, 16), "advantage.bias": torch.zeros(2)}
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"config": {"agent": {"dueling": True}}, "agent": {"online": old_online}})
    with pytest.raises(ConfigError, match=r"best\.pt.*dueling head of rlrun before Wang et al.*cannot be loaded"):
        load_checkpoint(path)


def test_todays_dueling_checkpoint_loads(tmp_path):
    online = QNetwork(4, 2, [16, 16], dueling=True).state_dict()
    save_checkpoint(tmp_path / "best.pt", {"config": {}, "agent": {"online": online}})
    QNetwork(4, 2, [16, 16], dueling=True).load_state_dict(load_checkpoint(tmp_path / "best.pt")["agent"]["online"])
