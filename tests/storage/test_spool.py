"""The ledger's on-disk spool: records written and read back, and a spill or replay of
thousands of records that lets other requests run while it encodes or decodes them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from lockgate.storage.spool import SLICE, Spool
from tests.storage.records import make_record

T = TypeVar("T")


async def _counting_turns(work: Awaitable[T]) -> tuple[T, int]:
    """``work``'s result and how many turns another task got while it ran."""
    turns = 0
    done = False

    async def other() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(other())
    await asyncio.sleep(0)
    turns = 0
    try:
        result = await work
    finally:
        done = True
        await ticker
    return result, turns


async def test_a_large_spill_and_replay_share_the_event_loop(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "ledger.spool", max_bytes=64 * 1024 * 1024)
    records = [make_record(f"req-{i:05d}") for i in range(10 * SLICE)]
    written, turns = await _counting_turns(spool.append(records))
    assert written == len(records)
    assert turns >= 9  # a yield every SLICE records encoded, not one stall for all
    (read, offset), turns = await _counting_turns(spool.read(0, len(records)))
    assert read == records and offset == spool.size
    assert turns >= 9
