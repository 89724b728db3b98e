"""Checkpoint files: their mode follows the umask, the rename is made durable, failed writes leave nothing behind."""

import errno
import os
import stat
import threading

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
    old_online = {
        "trunk.0.weight": torch.zeros(16, 4),
        "trunk.0.bias": torch.zeros(16),
        "value.weight": torch.zeros(1, 16),
        "value.bias": torch.zeros(1),
        "advantage.weight": torch.zeros(2, 16),
        "advantage.bias": torch.zeros(2),
    }
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"config": {"agent": {"dueling": True}}, "agent": {"online": old_online}})
    with pytest.raises(ConfigError, match=r"best\.pt.*dueling head of rlrun before Wang et al.*cannot be loaded"):
        load_checkpoint(path)


def test_todays_dueling_checkpoint_loads(tmp_path):
    online = QNetwork(4, 2, [16, 16], dueling=True).state_dict()
    save_checkpoint(tmp_path / "best.pt", {"config": {}, "agent": {"online": online}})
    QNetwork(4, 2, [16, 16], dueling=True).load_state_dict(load_checkpoint(tmp_path / "best.pt")["agent"]["online"])


def test_a_file_system_that_cannot_fsync_a_folder_still_keeps_the_checkpoint(tmp_path, monkeypatch):
    """Some FUSE and network file systems answer EINVAL to fsync on a folder; the renamed file is whole."""
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    save_checkpoint(tmp_path / "last.pt", PAYLOAD)
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["agent"]["weights"], torch.arange(4.0))


def test_the_event_writer_thread_s_disk_error_is_not_printed_as_a_traceback(capsys):
    """TensorBoard's writer thread keeps a failed write for its next call (turned into one paragraph there);
    Python would print the thread's traceback first. Other threads' errors still reach the previous hook."""
    from rlrun.logger import quiet_writer_thread_errors

    seen = []
    previous = threading.excepthook
    threading.excepthook = lambda args: seen.append(type(args.exc_value).__name__)
    try:
        quiet_writer_thread_errors()

        class _AsyncWriterThread(threading.Thread):  # the name TensorBoard's writer thread has
            def run(self):
                raise OSError(errno.ENOSPC, "No space left on device")

        def fails():
            raise ValueError("not a writer error")

        for thread in (_AsyncWriterThread(), threading.Thread(target=fails)):
            thread.start()
            thread.join()
    finally:
        threading.excepthook = previous
    assert seen == ["ValueError"]
