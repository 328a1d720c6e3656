"""A Hydra sweeper plugin for the tests: stands where Optuna would (not installed here) and
prints the sweep arguments it receives, as Hydra's parser reads them, then launches nothing.
Found by Hydra's own plugin scan when this folder is on PYTHONPATH (`hydra_plugins` is a
namespace package, shared with the installed launchers). No `from __future__ import
annotations`: Hydra's scan runs the module before it is in sys.modules, where dataclasses cannot
resolve string annotations."""

import json
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper

MARKER = "recorded sweep: "


@dataclass
class RecordingSweeperConf:
    _target_: str = "hydra_plugins.chimed_recording_sweeper.RecordingSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="recording", node=RecordingSweeperConf, provider="chimed_tests"
)


class RecordingSweeper(Sweeper):
    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config

    def sweep(self, arguments: list) -> list:
        parsed = OverridesParser.create().parse_overrides(arguments)
        rows = [
            {"text": a, "key": o.key_or_group, "type": o.value_type.name}
            for a, o in zip(arguments, parsed, strict=True)
        ]
        print(MARKER + json.dumps(rows), flush=True)
        return []
