"""TensorBoard logging for one run: scalars against env steps, and the run's hparams at the end."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

import imageio.v3 as iio
import numpy as np
from omegaconf import DictConfig
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from rlrun.errors import OutputWriteError
from rlrun.hparams import HPARAM_METRICS, flat_hparams


def hparams_summaries(values: Mapping[str, Any], swept: list[str]) -> list[Summary]:
    """The HParams plugin's experiment, session-start and session-end summaries for one run.

    TensorBoard (2.21) orders the HParams columns by its ``differs`` flag, then by name, and shows the first five
    hparams and five metrics by default: the swept keys are marked ``differs``, so they come first, and the
    metrics are HPARAM_METRICS, best and final eval return.
    """
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams

    _, session_start, session_end = hparams(dict(values), {})
    string, number = api_pb2.DataType.Value("DATA_TYPE_STRING"), api_pb2.DataType.Value("DATA_TYPE_FLOAT64")
    infos = [
        api_pb2.HParamInfo(name=key, type=string if isinstance(value, str) else number, differs=key in swept)
        for key, value in values.items()
    ]
    metrics = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=f"hparam/{key}"), display_name=label)
        for key, label in HPARAM_METRICS.items()
    ]
    experiment = plugin_data_pb2.HParamsPluginData(
        experiment=api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics), version=metadata.PLUGIN_DATA_VERSION
    )
    summary = Summary(
        value=[Summary.Value(tag=metadata.EXPERIMENT_TAG, metadata=metadata.create_summary_metadata(experiment))]
    )
    return [summary, session_start, session_end]


def quiet_writer_thread_errors() -> None:
    """Keep an OSError of TensorBoard's writer thread (a full disk) off stderr: the writer keeps the error and
    raises it at its next call, where :meth:`RunLogger.writing` turns it into one paragraph. Without this, Python
    prints the thread's traceback first. Installed once; every other thread's errors reach the previous hook."""
    previous = threading.excepthook
    if getattr(previous, "rlrun_writer_filter", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)

    hook.rlrun_writer_filter = True  # type: ignore[attr-defined]  # marks the hook as installed
    threading.excepthook = hook


class RunLogger:
    """One SummaryWriter in the run directory; ``tensorboard --logdir outputs`` finds every run.

    An event file that cannot be written (a full disk) raises :class:`OutputWriteError`; the writer's thread
    reports such an error at the next call, so it surfaces from whichever method comes next.
    """

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        quiet_writer_thread_errors()
        with self.writing():
            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step)

    @contextmanager
    def writing(self):
        try:
            yield
        except OSError as error:
            raise OutputWriteError(self.run_dir, error, "the TensorBoard event file in") from None

    def scalars(self, metrics: Mapping[str, Any], step: int) -> None:
        with self.writing():
            for key, value in metrics.items():
                self.writer.add_scalar(key, float(value), step)

    def video(self, tag: str, frames: list[np.ndarray], fps: int, step: int, downscale: int = 2) -> None:
        """An animated GIF in TensorBoard's Images tab: the summary ``SummaryWriter.add_video`` writes.

        ``add_video`` itself encodes with moviepy (which would downgrade pillow) and logs nothing without
        it, so the GIF is encoded here with imageio's pillow plugin. Frames are shrunk by ``downscale`` to
        keep event files small; the full-size MP4 is in ``videos/``.
        """
        clip = np.stack([frame[::downscale, ::downscale] for frame in frames])
        gif = iio.imwrite("<bytes>", clip, extension=".gif", duration=1000 / fps, loop=0)
        _, height, width, channels = clip.shape
        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=gif)
        with self.writing():
            self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def hparams(
        self,
        cfg: DictConfig,
        results: Mapping[str, float],
        columns: list[str] | None = None,
        swept: list[str] | None = None,
    ) -> None:
        """Write the run's hparams and final metrics into this same run.

        A sweep job gets its sweep's ``columns`` and ``swept`` keys (rlrun.sweeps.layout), so every job of the sweep
        writes the same key set and the same experiment; a single run writes every HPARAM_KEYS key.
        """
        writer = self.writer._get_file_writer()
        with self.writing():
            for summary in hparams_summaries(flat_hparams(cfg, columns), swept or []):
                writer.add_summary(summary)
        self.scalars({f"hparam/{key}": results[key] for key in HPARAM_METRICS if key in results}, 0)

    def close(self) -> None:
        with self.writing():
            self.writer.flush()
            self.writer.close()
