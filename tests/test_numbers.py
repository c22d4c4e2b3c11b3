"""One identity per phone number (acd.core.numbers): the forms a caller id,
a customers file or an SMS reply may take all come to one number."""

from __future__ import annotations

import random

import pytest

from acd.core.numbers import (
    CountryError,
    clean,
    dialled,
    is_e164,
    is_number,
    normalize,
    parse_country,
    variants,
)


@pytest.mark.parametrize(("written", "one"), [
    # a Chinese mobile in every form
    ("+8613800138000", "+8613800138000"),
    ("008613800138000", "+8613800138000"),
    ("8613800138000", "+8613800138000"),
    ("13800138000", "+8613800138000"),
    ("+86 138-0013-8000", "+8613800138000"),
    (" 138 0013 8000 ", "+8613800138000"),
    ("013800138000", "+8613800138000"),  # a trunk 0 before a mobile (some PBXs)
    # landlines: trunk 0 + area code + number
    ("02012345678", "+862012345678"),
    ("(020) 1234-5678", "+862012345678"),
    ("01012345678", "+861012345678"),  # Beijing
    ("075512345678", "+8675512345678"),  # a 3-digit area code
    ("+86 (0)20 1234 5678", "+862012345678"),  # the trunk 0 written after +86
    ("862012345678", "+862012345678"),
    # service numbers dialled as they are
    ("4008108888", "+864008108888"),
    ("800-810-8888", "+868008108888"),
    # other countries, written internationally
    ("+1 650 253 0000", "+16502530000"),
    ("0085261234567", "+85261234567"),
    ("+44 20 7946 0958", "+442079460958"),
    # what cannot be read as a full number stays as written (separators aside)
    ("1001", "1001"),
    ("10086", "10086"),
    ("95588", "95588"),
    ("110", "110"),
    ("86138", "86138"),
    ("anonymous", "anonymous"),
    ("", ""),
    ("  ", ""),
    ("+", "+"),
    ("+123", "+123"),  # too short for E.164
    ("+0123456789", "+0123456789"),  # no country code starts with 0
    ("1234567890123456789", "1234567890123456789"),
])
def test_normalize(written: str, one: str) -> None:
    assert normalize(written) == one
    assert normalize(one) == one  # once is enough


def test_the_configured_country_reads_its_national_forms_only() -> None:
    # 86 has a numbering plan here; a country without one keeps national forms
    assert normalize("13800138000", "86") == "+8613800138000"
    assert normalize("13800138000", "44") == "13800138000"
    assert normalize("07911123456", "44") == "07911123456"
    # international forms are one number whatever the country
    for country in ("86", "44", "1"):
        assert normalize("+447911123456", country) == "+447911123456"
        assert normalize("00447911123456", country) == "+447911123456"
        assert normalize("008613800138000", country) == "+8613800138000"


def _samples(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    samples = ["13800138000", "013800138000", "02012345678", "4008108888", "+16502530000",
               "16502530000", "1001"]
    for _ in range(n):
        prefix = rng.choice(["", "+", "00", "0", "86", "+86", "0086", "1", "13", "2", "44"])
        samples.append(prefix + "".join(rng.choice("0123456789")
                                        for _ in range(rng.randint(0, 14))))
    return samples


@pytest.mark.parametrize("country", ["86", "44", "1"])
def test_one_form_is_stable_and_its_variants_come_back_to_it(country: str) -> None:
    for s in _samples(11, 3000):
        one = normalize(s, country)
        assert normalize(one, country) == one, s
        forms = variants(one, country)
        assert forms[0] == one and len(set(forms)) == len(forms)
        # every variant reads as the number, in the country it is asked for:
        # an old row is never taken for another number's
        for f in forms:
            assert normalize(f, country) == one, (s, forms)
        assert normalize(dialled(one, country), country) == one, s
        assert is_e164(one) or one == clean(s), s  # nothing is lost


@pytest.mark.parametrize("country", ["86", "44", "1"])
def test_every_form_that_reads_as_the_number_is_a_variant(country: str) -> None:
    """The other direction: a caller id or an old row written without
    separators in any form the rules read (E.164 without '+', '00', national,
    trunk 0 + national) is among the variants of its number."""
    for s in _samples(12, 5000):
        one = normalize(s, country)
        if not is_e164(one) or s.removeprefix("+").removeprefix("00").startswith("860"):
            continue  # not a full number; a trunk 0 written after +86 (no one stores that)
        assert s in variants(one, country), (s, one)


def test_variants_are_the_forms_older_rows_hold() -> None:
    for n in ("+8613800138000", "+862012345678", "+864008108888", "+8675512345678"):
        assert all(normalize(f) == n for f in variants(n)), n
    assert variants("+8613800138000") == (
        "+8613800138000", "8613800138000", "008613800138000", "13800138000", "013800138000")
    assert variants("+862012345678") == (
        "+862012345678", "862012345678", "00862012345678", "02012345678")
    assert variants("1001") == ("1001",)


def test_a_mobile_behind_the_trunk_0_is_a_form_of_the_mobile() -> None:
    # some PBXs put the trunk 0 before a mobile: 013800138000 is +8613800138000
    assert normalize("013800138000") == "+8613800138000"
    assert "013800138000" in variants("+8613800138000")
    assert "013800138000" not in variants("+8613800138000", "44")  # not read there


def test_bare_digits_of_a_foreign_number_are_not_its_variant() -> None:
    # 16502530000 is a Chinese mobile (+8616502530000), which is how an older
    # version stored it; it must not match the US caller +1 650 253 0000
    assert normalize("16502530000") == "+8616502530000"
    assert variants("+16502530000") == ("+16502530000", "0016502530000")
    assert "16502530000" in variants("+8616502530000")
    # where the country reads no national forms, only the international ones
    assert variants("+8613800138000", "44") == ("+8613800138000", "008613800138000")
    assert variants("+16502530000", "1") == ("+16502530000", "0016502530000")


def test_dialled_is_what_a_gateway_of_the_country_takes() -> None:
    assert dialled("+8613800138000") == "13800138000"
    assert dialled("008613800138000") == "13800138000"
    assert dialled("+862012345678") == "02012345678"
    # another country's number with the international prefix: bare, 16502530000
    # would be a Chinese mobile number
    assert dialled("+16502530000") == "0016502530000"
    assert dialled("10086") == "10086"
    assert dialled("+8613800138000", "44") == "008613800138000"


def test_country_codes_and_numbers() -> None:
    assert parse_country("86") == parse_country("+86") == parse_country("0086") == "86"
    assert parse_country(" 1 ") == "1"
    for bad in ("", "0", "086x", "1234", "china", "+"):
        with pytest.raises(CountryError, match="is not a country calling code"):
            parse_country(bad)
    assert is_number("+86 138-0013-8000") and is_number("110")
    assert not is_number("12") and not is_number("anonymous") and not is_number("")
    assert not is_number("1" * 21)
