"""What Bedrock's per-request CPU costs on the event loop: SigV4 signing (botocore's
SigV4Auth), the Converse request translation, and decoding a 64-event stream with botocore's
EventStreamBuffer. Pure CPU, one core, no network.

    .venv/bin/python bench/bedrock_signing.py [--n 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import orjson
from botocore.credentials import ReadOnlyCredentials

from lockgate.providers.bedrock.auth import Signer
from lockgate.providers.bedrock.request import converse_body
from lockgate.providers.bedrock.stream import StreamTranslator
from lockgate.providers.simulator.eventstream import event

URL = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
BODY = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarise: lockgate is an AI gateway. " * 20},
    ],
    "max_tokens": 256,
    "temperature": 0.2,
}


def per_call(label: str, n: int, fn: Callable[[], object]) -> None:
    for _ in range(min(n, 1000)):
        fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    print(f"{label:<44} {(time.perf_counter() - started) / n * 1e6:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    signer = Signer("us-east-1")
    creds = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
    payload = orjson.dumps(converse_body(BODY))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    per_call(
        "SigV4 sign (botocore SigV4Auth)", n, lambda: signer.sign(creds, URL, payload, headers)
    )
    per_call(
        "Converse body (translate + orjson.dumps)", n, lambda: orjson.dumps(converse_body(BODY))
    )
    stream = b"".join(
        event(
            "contentBlockDelta", orjson.dumps({"delta": {"text": " word"}, "contentBlockIndex": 0})
        )
        for _ in range(64)
    )

    def decode() -> None:
        from botocore.eventstream import EventStreamBuffer

        buffer = EventStreamBuffer()
        buffer.add_data(stream)
        translator = StreamTranslator("c", "m", 0)
        for message in buffer:
            translator.event(message.headers[":event-type"], orjson.loads(message.payload))

    per_call("decode + translate 64 stream events", max(1, n // 10), decode)


if __name__ == "__main__":
    main()
