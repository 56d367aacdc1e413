"""Money as integers: the unit budgets count in, and conversions to and from US dollars."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

#: Budgets, reservations and costs are plain ints of this unit: no float ever adds money.
MONEY_UNIT = "nano-USD"
UNITS_PER_USD = 1_000_000_000  # 1 unit = 1e-9 USD


def usd_to_units(usd: float | str | Decimal) -> int:
    """Dollars to money units, rounded up (a limit or a price never loses a fraction).
    Floats go through their shortest decimal form, so ``0.15`` is exactly 150,000,000."""
    amount = Decimal(str(usd)) if isinstance(usd, float) else Decimal(usd)
    return int((amount * UNITS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def units_to_usd(units: int) -> Decimal:
    return Decimal(units) / UNITS_PER_USD


def format_usd(units: int) -> str:
    """A human amount for messages: ``$12.34`` (cents shown, finer fractions rounded up)."""
    cents = -(-units // (UNITS_PER_USD // 100))
    return f"${cents // 100:,}.{cents % 100:02d}"
