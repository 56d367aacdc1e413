"""Pricing: genai-prices' figures, configured overrides, each token kind once, integers."""

from __future__ import annotations

import random
from decimal import Decimal

import genai_prices
import pytest
from genai_prices.data import providers
from genai_prices.data_snapshot import get_snapshot

from lockgate.config.schema import Prices
from lockgate.core.types import RequestContext, Usage
from lockgate.features.pricing import PriceBook, catalogue_usage, nanos


def test_gpt_4o_mini_at_genai_prices_figures() -> None:
    # 1000 prompt tokens of which 400 cached, 100 completion tokens.
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    cost = PriceBook().cost("d", "openai", "gpt-4o-mini", usage)
    # USD per million: 0.15 input, 0.075 cached input, 0.60 output.
    assert cost.nanos == 600 * 150 + 400 * 75 + 100 * 600 == 180_000
    assert cost.priced
    reference = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, cache_read_tokens=400, output_tokens=100),
        "gpt-4o-mini",
        provider_id="openai",
    )
    assert Decimal(cost.nanos) / 10**9 == reference.total_price


def test_anthropic_cache_reads_and_writes_priced_apart() -> None:
    usage = Usage(prompt_tokens=10_000, completion_tokens=500, cached_tokens=6_000,
                  cache_creation_tokens=3_000)  # fmt: skip
    cost = PriceBook().cost("d", "anthropic", "claude-sonnet-4-5", usage)
    # USD per million: 3 input, 0.30 cache read, 3.75 cache write, 15 output.
    assert cost.nanos == 1_000 * 3_000 + 6_000 * 300 + 3_000 * 3_750 + 500 * 15_000
    # Past 200K input tokens the whole request moves to the long-context tier.
    long = PriceBook().cost("d", "anthropic", "claude-sonnet-4-5", Usage(300_000, 1_000))
    assert long.nanos == 300_000 * 6_000 + 1_000 * 22_500


def test_reasoning_tokens_are_part_of_completion_not_extra() -> None:
    with_reasoning = Usage(prompt_tokens=100, completion_tokens=1_000, reasoning_tokens=800)
    without = Usage(prompt_tokens=100, completion_tokens=1_000)
    book = PriceBook()
    assert book.cost("d", "openai", "o3-mini", with_reasoning) == book.cost(
        "d", "openai", "o3-mini", without
    )


def test_overrides_price_each_kind_with_defaults() -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=200, cached_tokens=300,
                  cache_creation_tokens=100, reasoning_tokens=50)  # fmt: skip
    plain = Prices(input=Decimal("2"), output=Decimal("8"))
    book = PriceBook({"mine": plain, "split": Prices(
        input=Decimal("2"), output=Decimal("8"), cached_input=Decimal("0.5"),
        cache_write=Decimal("2.5"), reasoning=Decimal("10"),
    )})  # fmt: skip
    # Without separate rates, cached/written input cost as input, reasoning as output.
    assert book.cost("mine", "vllm", "llama", usage).nanos == 1_000 * 2_000 + 200 * 8_000
    assert book.cost("split", "vllm", "llama", usage).nanos == (
        600 * 2_000 + 300 * 500 + 100 * 2_500 + 150 * 8_000 + 50 * 10_000
    )
    # An override wins over the catalogue for a known model too.
    assert PriceBook({"d": plain}).cost("d", "openai", "gpt-4o", usage).nanos == 3_600_000


def test_fractions_of_a_nano_dollar_round_once_per_answer() -> None:
    book = PriceBook({"d": Prices(input=Decimal("0.0015"), output=Decimal("0"))})
    assert book.cost("d", "x", "m", Usage(prompt_tokens=1)).nanos == 2  # 1.5 -> 2 (even)
    assert book.cost("d", "x", "m", Usage(prompt_tokens=3)).nanos == 4  # 4.5 -> 4 (even)
    assert nanos(Decimal("0.0000000015")) == 2


def test_unknown_models_cost_nothing_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook()
    for _ in range(3):
        cost = book.cost("local", "vllm", "my-llama", Usage(100, 100))
        assert (cost.nanos, cost.priced) == (0, False)
    assert book.cost("d", "openai", "no-such-model", Usage(1, 1)).priced is False
    assert book.unpriced == {("local", "my-llama"): 3, ("d", "no-such-model"): 1}
    assert sum("no price known" in r.message for r in caplog.records) == 2  # once per model


def test_subsets_larger_than_their_total_are_clamped() -> None:
    book = PriceBook()
    odd = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=50, reasoning_tokens=9)
    sane = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=10, reasoning_tokens=5)
    assert book.cost("d", "openai", "gpt-4o-mini", odd) == book.cost(
        "d", "openai", "gpt-4o-mini", sane
    )


def test_the_fast_path_agrees_with_genai_prices() -> None:
    """Flat-priced models skip genai-prices' general calculation; check the two agree on
    every OpenAI and Anthropic model of the bundled catalogue."""
    book, rng, checked = PriceBook(), random.Random(5), 0
    for provider in providers:
        if provider.id not in ("openai", "anthropic"):
            continue
        for model in provider.models:
            for _ in range(3):
                prompt = rng.randint(0, 300_000)
                cached = rng.randint(0, prompt)
                written = rng.randint(0, prompt - cached)
                completion = rng.randint(0, 20_000)
                usage = Usage(prompt, completion, cached, written, rng.randint(0, completion))
                ours = book.cost("d", provider.id, model.id, usage)
                try:
                    found = get_snapshot().find_provider_model(model.id, None, provider.id, None)
                except LookupError:  # an id its own matcher does not find (ft:...)
                    assert not ours.priced
                    continue
                theirs = found[1].calc_price(catalogue_usage(usage), found[0])
                assert ours.nanos == nanos(theirs.total_price), model.id
                checked += 1
    assert checked > 100


def test_cost_header_is_a_plain_usd_decimal() -> None:
    ctx = RequestContext("r")
    ctx.stamp("g", "d", "openai")
    ctx.bill(Usage(1, 1), 210_000, True)
    assert ctx.response_headers()["x-lockgate-cost"] == "0.00021"
    ctx.bill(Usage(1, 1), 2_999_790_000, True)
    assert ctx.response_headers()["x-lockgate-cost"] == "3"


def test_flat_rates_are_what_plain_usage_costs_and_none_otherwise() -> None:
    book = PriceBook({
        "mine": Prices(input=Decimal("2"), output=Decimal("8")),
        "fraction": Prices(input=Decimal("0.0015"), output=Decimal("1")),
    })  # fmt: skip
    for deployment, provider, model in (("mine", "vllm", "llama"), ("d", "openai", "gpt-4o-mini")):
        rates = book.flat_rates(deployment, provider, model)
        assert rates is not None
        for prompt, completion in ((0, 0), (1, 0), (0, 1), (1234, 567), (300_000, 1_000)):
            quoted = book.quote(deployment, provider, model, Usage(prompt, completion)).nanos
            assert prompt * rates[0] + completion * rates[1] == quoted
    assert book.flat_rates("mine", "vllm", "llama") == (2_000, 8_000)
    assert book.flat_rates("fraction", "x", "m") is None  # not whole nano-dollars a token
    assert book.flat_rates("d", "anthropic", "claude-sonnet-4-5") is None  # tiered
    assert book.flat_rates("d", "selfhosted", "no-such-model") is None
