"""The one validator of integers and numbers: every constructor that takes a count, a size or a
bounded number checks it here, where it is built, so that a bad value fails before training with
``name=value is invalid: must be ...``.

``bool`` is an ``int`` to Python, but never a count: ``True`` is rejected everywhere. A bound
written with ``not`` also rejects NaN, which compares false with everything.
"""

from numbers import Real


def is_number(value: object) -> bool:
    """Whether `value` is a real number that is not a bool (a metric's value, say)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def require_int(name: str, value: object, minimum: int) -> None:
    """Raises ValueError naming `name` unless `value` is an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: must be an integer >= {minimum}")


def require_number(name: str, value: object, minimum: float) -> None:
    """Raises ValueError naming `name` unless `value` is a real number >= `minimum` (not NaN)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not value >= minimum:
        raise ValueError(f"{name}={value!r} is invalid: must be a number >= {minimum}")


def require_in(name: str, value: object, low: float, high: float, closed: str = "[)") -> None:
    """Raises ValueError naming `name` unless `value` is a real number in the interval from
    `low` to `high`, each end closed or open as `closed` writes it (`"[)"`, `"(]"`, `"[]"`,
    `"()"`)."""
    opening, closing = closed
    real = isinstance(value, Real) and not isinstance(value, bool)
    above = real and (value >= low if opening == "[" else value > low)
    below = real and (value <= high if closing == "]" else value < high)
    if not (above and below):
        interval = f"{opening}{low:g}, {high:g}{closing}"
        raise ValueError(f"{name}={value!r} is invalid: must be in {interval}")
