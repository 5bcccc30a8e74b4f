"""What a point is worth: a value per point in a currency, and money figures from points.

A value per point is stored exactly as a whole number of millionths of the currency's unit
(``VALUE_DIGITS`` decimals: 0.005 USD is 5,000), so a value has at most six decimals. A money
figure (points x value) is computed exactly and rounded once, half to even, to the currency's
minor unit (cents for USD, none for JPY, thousandths for KWD): a total is rounded from the
exact sum of its parts, not summed from rounded parts.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from pointctl.core.errors import InvalidInputError

VALUE_DIGITS = 6
MICROS = 10**VALUE_DIGITS  # stored units in one unit of the currency
MAX_VALUE_MICROS = 10**6 * MICROS  # at most 1,000,000 currency units per point

# ISO 4217 currencies in use, with the digits of their minor unit (2 unless listed below)
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD "
    "GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD "
    "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP "
    "PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWG"
).split()
CURRENCIES: dict[str, int] = {
    **dict.fromkeys(_TWO + ["VED", "XCG"], 2),
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}


def check_currency(code: str, *, what: str = "--currency") -> str:
    """An ISO 4217 currency code (any case in, upper case out)."""
    from pointctl.core.validation import did_you_mean

    wanted = code.strip().upper()
    if wanted not in CURRENCIES:
        raise InvalidInputError(f"{what} {code!r} is not a currency code (ISO 4217, such as "
                                f"USD, EUR or JPY){did_you_mean(wanted, CURRENCIES)}")
    return wanted


_DECIMAL = re.compile(r"[+-]?(\d+)(?:\.(\d*))?|[+-]?\.(\d+)", re.ASCII)


def parse_value(text: str | int, *, what: str = "--value") -> int:
    """A value per point, written as a decimal ("0.01", "0.005", "2"): its millionths, read
    digit by digit (no exponents, no rounding). Floats are never taken (a binary fraction is
    not the decimal that was meant)."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise InvalidInputError(f"{what} must be a decimal written as text, such as \"0.01\", "
                                f"got {text!r}")
    written = str(text).strip()
    match = _DECIMAL.fullmatch(written)
    if match is None:
        raise InvalidInputError(f"{what} must be a decimal amount such as 0.01, got "
                                f"{written[:40]!r}")
    whole, fraction = match[1] or "0", (match[2] or match[3] or "").rstrip("0")
    if written.startswith("-") or not (whole.strip("0") or fraction):
        raise InvalidInputError(f"{what} must be more than 0, got {written[:40]!r}")
    if len(fraction) > VALUE_DIGITS:
        raise InvalidInputError(f"{what} {written[:40]!r} has more than {VALUE_DIGITS} "
                                "decimals; a value per point is kept to a millionth of the "
                                "currency unit")
    if len(whole.lstrip("0")) > 7 or \
            int(whole) * MICROS + int(fraction.ljust(VALUE_DIGITS, "0")) > MAX_VALUE_MICROS:
        raise InvalidInputError(f"{what} {written[:40]!r} is too large: at most "
                                f"{MAX_VALUE_MICROS // MICROS:,} per point")
    return int(whole) * MICROS + int(fraction.ljust(VALUE_DIGITS, "0"))


def value_text(micros: int) -> str:
    """A stored value per point as a decimal without trailing zeros: 10000 -> "0.01"."""
    whole, part = divmod(micros, MICROS)
    fraction = f"{part:0{VALUE_DIGITS}d}".rstrip("0")
    return f"{whole}.{fraction}" if fraction else str(whole)


def exact(points: int, micros: int) -> Decimal:
    """Points at a value per point, exactly."""
    return Decimal(points * micros).scaleb(-VALUE_DIGITS)


def rounded(amount: Decimal, currency: str) -> Decimal:
    """A money figure rounded half to even to the currency's minor unit (0.125 USD -> 0.12,
    0.135 USD -> 0.14)."""
    return amount.quantize(Decimal(1).scaleb(-CURRENCIES[currency]), rounding=ROUND_HALF_EVEN)


def money_text(amount: Decimal, currency: str) -> str:
    """A rounded figure as plain text with the currency's digits: "1234.50"."""
    return f"{rounded(amount, currency):f}"


def parse_point_value(value: str | int | None, currency: str | None
                      ) -> tuple[int | None, str | None]:
    """``--value`` (millionths) and ``--currency`` as given, each checked on its own: bad input
    is refused before any source is looked up."""
    return (None if value is None else parse_value(value),
            None if currency is None else check_currency(currency))


def point_value(given: tuple[int | None, str | None], *,
                current: tuple[int, str] | None = None) -> tuple[int, str] | None:
    """The (millionths, currency) a source is set to from what was ``given``
    (``parse_point_value``) over its ``current`` ones: a value needs a currency, given with it
    or already set; a currency alone re-labels the value already set. Nothing given:
    ``current`` unchanged."""
    micros, code = given
    if micros is None and code is None:
        return current
    if micros is None:
        if current is None:
            raise InvalidInputError("--currency needs --value: the source has no value per "
                                    "point yet")
        micros = current[0]
    if code is None:
        if current is None:
            raise InvalidInputError("--value needs --currency (an ISO 4217 code such as USD)")
        code = current[1]
    return micros, code


def fraction_text(amount: Fraction, currency: str) -> str:
    """An exact rational amount (an estimate) rounded half to even to the currency's minor
    unit, as text."""
    digits = CURRENCIES[currency]
    minor = round(amount * 10**digits)  # round() of a Fraction: half to even
    return money_text(Decimal(minor).scaleb(-digits), currency)
