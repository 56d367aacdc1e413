"""Bedrock credentials: expiring ones are refreshed off the event loop, and only when due."""

from __future__ import annotations

import datetime
import time
from typing import Any

from botocore.credentials import RefreshableCredentials

from lockgate.providers.bedrock.auth import Signer


def _metadata(key: str, minutes: int) -> dict[str, Any]:
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    return {"access_key": key, "secret_key": "s", "token": "t", "expiry_time": expiry.isoformat()}


async def test_expiring_credentials_refresh_in_a_thread() -> None:
    refreshed: list[str] = []

    def refresh() -> dict[str, Any]:
        time.sleep(0.01)  # blocking, like STS or IMDS: the blockbuster fixture fails it on the loop
        refreshed.append("AKIDNEW")
        return _metadata("AKIDNEW", 60)

    # Five minutes left: inside botocore's advisory refresh window.
    source = RefreshableCredentials.create_from_metadata(_metadata("AKIDOLD", 5), refresh, "test")
    signer = Signer("us-east-1", source=source)
    first = await signer.credentials()
    second = await signer.credentials()
    assert first.access_key == second.access_key == "AKIDNEW"
    assert refreshed == ["AKIDNEW"]  # once: the new credentials are good for an hour
    headers = signer.sign(first, "https://h/model/m/converse", b"{}", {"Accept": "a"})
    assert "Credential=AKIDNEW/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "t"


async def test_fresh_credentials_are_used_as_they_are() -> None:
    def refresh() -> dict[str, Any]:
        raise AssertionError("not due")

    source = RefreshableCredentials.create_from_metadata(_metadata("AKIDOK", 60), refresh, "test")
    signer = Signer("us-east-1", source=source)
    assert (await signer.credentials()).access_key == "AKIDOK"
