"""Human output: the live progress line on stderr and the final table on stdout."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TextIO

from lockgate.profiler.stats import Collector


class Progress:
    """A single line rewritten in place on a terminal; a plain line every few seconds
    otherwise (logs and CI keep every line, so fewer of them)."""

    def __init__(self, out: TextIO, collector: Collector, duration: float) -> None:
        self._out = out
        self._collector = collector
        self._duration = duration
        self._tty = out.isatty()
        self.interval = 0.25 if self._tty else 5.0

    def line(self) -> str:
        c = self._collector
        elapsed = time.monotonic() - c.started
        p50 = c.recent_p50_ms()
        return (
            f"{min(elapsed, self._duration):5.1f}/{self._duration:g}s  done {len(c.samples)}"
            f"  ok {c.ok}  429 {c.rate_limited}  errors {c.failed}"
            f"  p50 {'-' if p50 is None else f'{p50:.0f}ms'}"
        )

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                self.show()
        self.show()
        if self._tty:
            self._out.write("\n")
            self._out.flush()

    def show(self) -> None:
        if self._tty:
            self._out.write("\r\x1b[2K" + self.line())
        else:
            self._out.write(self.line() + "\n")
        self._out.flush()


def _ms(dist: dict[str, float] | None, key: str) -> str:
    return "-" if dist is None else f"{dist[key]:.1f}"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if value >= 1 else f"${value:.6f}"


def _num(value: float | int | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def render(report: dict[str, Any]) -> str:
    """The report as an aligned two-column table."""
    t, r, th, tok, cost, lim = (
        report[k] for k in ("target", "requests", "throughput", "tokens", "cost", "limits")
    )
    load = t["load"]
    shape = (
        f"{load['rps']:g} rps ({load['arrivals']})"
        if "rps" in load
        else f"concurrency {load['concurrency']}"
    )
    rows: list[tuple[str, str]] = [
        ("target", f"{t['mode']} {t['url']} model {t['model']}"),
        ("load", f"{shape} for {t['duration_s']:g}s{', streamed' if t['stream'] else ''}"),
        ("", ""),
        ("requests", f"{r['sent']} sent, {r['ok']} ok, {r['failed']} failed"),
        ("by status", ", ".join(f"{k}: {v}" for k, v in r["by_status"].items()) or "-"),
        ("error rate", _pct(r["error_rate"])),
        ("429 rate", _pct(r["rate_limited_rate"])),
        ("throughput", f"{th['sent_rps']:g} sent/s, {th['ok_rps']:g} ok/s"),
        ("", ""),
        ("latency ms", "p50 / p90 / p95 / p99 / max"),
    ]
    for name, key in (("  total", "latency_ms"), ("  first token", "ttft_ms")):
        dist = report[key]
        rows.append((name, " / ".join(_ms(dist, k) for k in ("p50", "p90", "p95", "p99", "max"))))
    rows += [
        ("", ""),
        ("tokens / request", f"{_num(tok['prompt_per_request'])} in, "
         f"{_num(tok['completion_per_request'])} out"),
        ("tokens / second", f"{_num(tok['prompt_per_s'])} in, {_num(tok['completion_per_s'])} out"),
        ("cost / request", f"{_usd(cost['per_request_usd'])} ({cost['source']})"),
        (f"at {cost['load_rps']:g} rps", f"{_usd(cost['per_day_usd'])} / day, "
         f"{_usd(cost['per_month_usd'])} / month"),
        ("", ""),
        ("advertised limits", f"{lim['source']}"),
        ("  requests / min", f"{_num(lim['requests_per_minute'])} "
         f"(least remaining {_num(lim['min_remaining_requests'])})"),
        ("  tokens / min", f"{_num(lim['tokens_per_minute'])} "
         f"(least remaining {_num(lim['min_remaining_tokens'])})"),
    ]  # fmt: skip
    gateway = report.get("gateway")
    if gateway and gateway["deployments"]:
        served = ", ".join(f"{k}: {v}" for k, v in gateway["deployments"].items())
        rows.append(("served by", served))
        rows.append(
            ("attempts / fallbacks", f"{_num(gateway['mean_attempts'])} / {gateway['fallbacks']}")
        )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}".rstrip() for name, value in rows) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
