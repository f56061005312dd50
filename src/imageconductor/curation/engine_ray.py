"""Ray Data engine: the same stage functions as the local engine, run as Ray Data ``map`` tasks.

Results stream back to the driver, which caches each one and later writes the shards itself, so the
shards are byte-identical to the local engine's. A local Ray cluster is started unless ``address`` names
an existing one (e.g. ``"auto"`` or ``"ray://head:10001"``); on a real cluster the input paths must be
readable from every node.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from imageconductor.curation.codec import array_to_npy, npy_to_array
from imageconductor.curation.config import CurationConfig
from imageconductor.curation.errors import BackendUnavailableError
from imageconductor.curation.inputs import InputItem
from imageconductor.curation.stages import Pass1Result, Pass2Result, analyse_input, annotate_clip


def _pass1_row(row: dict[str, Any], config_json: str) -> dict[str, Any]:
    config = CurationConfig.from_dict(json.loads(config_json))
    result = analyse_input(InputItem.from_dict(json.loads(row["item_json"])), config)
    return {
        "record_json": json.dumps(result.record, sort_keys=True),
        "clip": result.clip,
        "timings_json": json.dumps(result.timings),
    }


def _pass2_row(row: dict[str, Any], config_json: str) -> dict[str, Any]:
    config = CurationConfig.from_dict(json.loads(config_json))
    result = annotate_clip(row["key"], bytes(row["clip"]), config)
    failed = result.error is not None
    return {
        "key": result.key,
        "tracks": b"" if failed else array_to_npy(result.tracks),
        "visibility": b"" if failed else array_to_npy(result.visibility),
        "error": result.error or "",
        "timings_json": json.dumps(result.timings),
        "info_json": json.dumps(result.info),
    }


class RayEngine:
    """Runs the stages on Ray Data. ``num_cpus`` only applies when a local cluster is started here."""

    name = "ray"

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, chunk_size: int = 256
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise BackendUnavailableError(
                'the Ray engine needs Ray Data: pip install "ray[data]" (or use --engine local)'
            ) from exc
        self._ray = ray
        self.chunk_size = chunk_size
        self._started_here = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            elif num_cpus:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(**kwargs)
            except Exception as exc:  # noqa: BLE001 - name the address that failed
                raise BackendUnavailableError(
                    f"cannot start or reach a Ray cluster (address={address!r}): {exc}"
                ) from exc
            self._started_here = True
        import ray.data

        for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
            logging.getLogger(name).setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False

    def _run(self, rows: Iterable[dict[str, Any]], fn, config: CurationConfig) -> Iterator[dict[str, Any]]:
        import ray.data

        config_json = json.dumps(config.to_dict())
        row_iter = iter(rows)
        while True:
            chunk = list(islice(row_iter, self.chunk_size))
            if not chunk:
                return
            dataset = ray.data.from_items(chunk, override_num_blocks=len(chunk))
            mapped = dataset.map(fn, fn_kwargs={"config_json": config_json})
            yield from mapped.iter_rows()

    def run_pass1(self, items: Iterable[InputItem], config: CurationConfig) -> Iterator[Pass1Result]:
        rows = ({"item_json": json.dumps(item.to_dict())} for item in items)
        for row in self._run(rows, _pass1_row, config):
            yield Pass1Result(
                json.loads(row["record_json"]), bytes(row["clip"] or b""), json.loads(row["timings_json"])
            )

    def run_pass2(self, jobs: Iterable[tuple[str, bytes]], config: CurationConfig) -> Iterator[Pass2Result]:
        rows = ({"key": key, "clip": clip} for key, clip in jobs)
        for row in self._run(rows, _pass2_row, config):
            timings = json.loads(row["timings_json"])
            if row["error"]:
                yield Pass2Result(row["key"], None, None, row["error"], timings)
            else:
                tracks = npy_to_array(bytes(row["tracks"]))
                visibility = npy_to_array(bytes(row["visibility"]))
                yield Pass2Result(row["key"], tracks, visibility, None, timings, json.loads(row["info_json"]))

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
