"""Orbax checkpoints of the full Trial state, with the spec and provenance as metadata.

Layout: ``<run>/checkpoints/<frame>/{state,meta}``; ``frame`` is the frames trained per
session. ``state`` is the whole vmapped training state (params, optimizer, env states,
normaliser statistics, RNG keys, counters); ``meta`` is JSON with the resolved spec,
git SHA, format version, frame and chunk index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

FORMAT_VERSION = 1


class Checkpointer:
    """A thin wrapper over ``orbax.checkpoint.CheckpointManager`` (async saves)."""

    def __init__(self, directory: str | Path, keep: int, metadata: dict[str, Any] | None = None):
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, metadata=metadata or {}
        )

    def save(self, frame: int, state: Any, meta: dict[str, Any]) -> None:
        """Save ``state`` at ``frame``; returns once device arrays are copied to the host."""
        meta = {**meta, "format_version": FORMAT_VERSION, "frame": frame}
        self.manager.save(
            frame,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
        )

    def steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, template: Any, frame: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore (state, meta) at ``frame`` (default: latest) into ``template``'s structure."""
        frame = self.manager.latest_step() if frame is None else frame
        if frame is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        out = self.manager.restore(
            frame,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()
            ),
        )
        return out["state"], out["meta"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
