"""Phone numbers: one identity per number, E.164 where the number can be read.

Pure: strings in, strings out.  Everything that keys data by a caller's
number (the customers table, the caller lookup, the SMS cap, the opt-out
list, the SMS report) takes the key from :func:`normalize`, so
``+8613800138000``, ``008613800138000``, ``8613800138000`` and the national
``13800138000`` are one number: ``+8613800138000``.

The rules (``country`` is the configured country calling code, ``86`` by
default; ``country_code`` in acd.yaml):

* Spaces, dashes, dots, slashes and parentheses are dropped first.
* ``+`` or the international prefix ``00``, then 7-15 digits: E.164 as it
  stands (a trunk ``0`` written after a known country code, as in
  ``+86 (0)20 1234 5678``, is dropped).
* National forms are read for the countries whose numbering plan is below
  (:data:`PLANS`; today China, ``86``): a mobile number (``13800138000``)
  and a 400/800 number as they are dialled, a number behind the trunk
  ``0`` (``02012345678`` is ``+862012345678``), and the country code
  written without ``+`` or ``00`` (``8613800138000``) where no national
  number has that form.
* Anything else (an extension ``1001``, a short code ``10086``,
  ``anonymous``, an empty caller id) stays as it is, without the separators:
  nothing is lost, and it is still one identity per written form.

Rows written before numbers were normalised, and call records (which keep
the caller id as the network gave it), may hold another form; the readers
look up every form that reads as the number (:func:`variants`).  docs/decisions.md ("One
identity per phone number") says why the rules are written here rather than
taken from the ``phonenumbers`` package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: the country calling code used when none is configured (China)
DEFAULT_COUNTRY: Final = "86"

#: digits after the '+' of an E.164 number
E164_MIN_DIGITS: Final = 7
E164_MAX_DIGITS: Final = 15

_SEPARATORS: Final = str.maketrans("", "", " \t\u00a0\u3000-./()")
_DIALLED: Final = re.compile(r"\+?[0-9]+")
_NUMBER: Final = re.compile(r"\+?[0-9]{3,20}")
_E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
_COUNTRY: Final = re.compile(r"[1-9][0-9]{0,2}")


@dataclass(frozen=True, slots=True)
class Plan:
    """What this module knows of one country's numbering plan."""

    #: the national (significant) number: what follows the country code
    national: re.Pattern[str]
    #: national numbers dialled as they are, without the trunk prefix
    bare: re.Pattern[str]
    trunk: str = "0"


PLANS: Final[dict[str, Plan]] = {
    # China: mobiles 1[3-9]x (11 digits); Beijing 10 + 8 digits; 2x + 8
    # digits; 3-digit area codes + 7 or 8 digits; 400/800 service numbers.
    "86": Plan(national=re.compile(r"1[3-9][0-9]{9}|10[0-9]{8}|2[0-9]{9}|[3-9][0-9]{9,10}"),
               bare=re.compile(r"1[3-9][0-9]{9}|[48]00[0-9]{7}")),
}


class CountryError(ValueError):
    """A country calling code that cannot be one (``country_code`` in acd.yaml)."""


def parse_country(text: str) -> str:
    """A country calling code as configured: ``86``, ``+86`` or ``0086`` -> ``86``."""
    code = text.strip().removeprefix("+")
    if code.startswith("00"):
        code = code[2:]
    if not _COUNTRY.fullmatch(code):
        raise CountryError(f"{text!r} is not a country calling code (1-3 digits, e.g. 86)")
    return code


def clean(number: str) -> str:
    """The number without spaces, dashes, dots, slashes or parentheses."""
    return number.strip().translate(_SEPARATORS)


def is_number(text: str) -> bool:
    """True if ``text`` can be a phone number at all: 3-20 digits with an
    optional leading ``+`` (separators aside), not ``anonymous`` or empty."""
    return _NUMBER.fullmatch(clean(text)) is not None


def normalize(number: str, country: str = DEFAULT_COUNTRY) -> str:
    """The one form of ``number``: E.164 with ``+`` where it can be read,
    else the number as written, without separators (see the module text)."""
    s = clean(number)
    if not _DIALLED.fullmatch(s):
        return s
    if s[0] == "+":
        return _international(s[1:]) or s
    if s.startswith("00"):
        return _international(s[2:]) or s
    plan = PLANS.get(country)
    if plan is not None:
        nsn = _national(s, country, plan)
        if nsn is not None:
            return f"+{country}{nsn}"
    return s


def _international(digits: str) -> str | None:
    for code, plan in PLANS.items():
        if digits.startswith(code + plan.trunk):
            nsn = digits[len(code) + len(plan.trunk):]
            if plan.national.fullmatch(nsn):
                return f"+{code}{nsn}"
    if E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS and digits[0] != "0":
        return "+" + digits
    return None


def _national(s: str, country: str, plan: Plan) -> str | None:
    """The national significant number of a number written in ``country``."""
    if plan.bare.fullmatch(s):
        return s
    if s.startswith(plan.trunk) and plan.national.fullmatch(s[len(plan.trunk):]):
        return s[len(plan.trunk):]
    # the country code without '+' or '00': no national number is written
    # this way (a local number without its area code is shorter)
    if s.startswith(country) and plan.national.fullmatch(s[len(country):]):
        return s[len(country):]
    return None


def is_e164(number: str) -> bool:
    """True for a normalised number that is a full international number."""
    return _E164.fullmatch(number) is not None


def dialled(number: str, country: str = DEFAULT_COUNTRY) -> str:
    """The number as it is dialled in ``country`` (what an SMS gateway there
    takes): a number of that country in its national form (``13800138000``,
    ``02012345678``), another country's number after the international
    prefix (``0016502530000``: written as bare digits it could read as a
    Chinese mobile), anything else as it is.  ``number`` is normalised first."""
    n = normalize(number, country)
    if not is_e164(n):
        return n
    plan = PLANS.get(country)
    nsn = n[1 + len(country):]
    if plan is not None and n.startswith("+" + country) and plan.national.fullmatch(nsn):
        return nsn if plan.bare.fullmatch(nsn) else plan.trunk + nsn
    return "00" + n[1:]


def variants(number: str, country: str = DEFAULT_COUNTRY) -> tuple[str, ...]:
    """The forms under which older rows or raw caller ids may hold the
    normalised ``number``, itself first: for ``country`` 86,
    ``+8613800138000`` -> ``('+8613800138000', '8613800138000',
    '008613800138000', '13800138000', '013800138000')``.

    The candidates are the E.164 digits without ``+``, the ``00`` form, and
    for a country in :data:`PLANS` the national number and the trunk ``0``
    before it; a candidate is kept only if ``normalize(candidate, country)``
    is ``number``.  So a row is found under a number only when its key reads
    as that number today: ``16502530000`` is a Chinese mobile in ``86``, and
    is not a form of ``+16502530000`` (whose forms there are itself and
    ``0016502530000``).  A number that is not E.164 has only itself."""
    if not is_e164(number):
        return (number,)
    digits = number[1:]
    out = [digits, "00" + digits]
    for code, plan in PLANS.items():
        nsn = digits[len(code):]
        if digits.startswith(code) and plan.national.fullmatch(nsn):
            out += [nsn, plan.trunk + nsn]
    return tuple(dict.fromkeys(
        [number] + [f for f in out if normalize(f, country) == number]))
