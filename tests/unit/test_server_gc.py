"""A server process collects young objects less often than Python's default."""

from __future__ import annotations

import gc

from node import cli


def test_servers_raise_only_the_young_generation_threshold() -> None:
    before = gc.get_threshold()
    try:
        cli._collect_young_objects_less_often()
        assert gc.get_threshold() == (cli.YOUNG_COLLECTION_THRESHOLD, *before[1:])
        assert before[0] < cli.YOUNG_COLLECTION_THRESHOLD
    finally:
        gc.set_threshold(*before)
