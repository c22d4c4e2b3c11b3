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


def test_one_form_is_stable_and_its_variants_come_back_to_it() -> None:
    rng = random.Random(11)
    samples = ["13800138000", "02012345678", "4008108888", "+16502530000", "1001"]
    for _ in range(3000):
        prefix = rng.choice(["", "+", "00", "0", "86", "+86", "0086", "1", "13", "2"])
        samples.append(prefix + "".join(rng.choice("0123456789")
                                        for _ in range(rng.randint(0, 14))))
    for s in samples:
        one = normalize(s)
        assert normalize(one) == one, s
        forms = variants(one)
        assert forms[0] == one and len(set(forms)) == len(forms)
        # the older forms read back as the number; the digits without '+' (how
        # the SMS tables used to keep a foreign number) may read otherwise
        # (16502530000 is a Chinese mobile too): a key for old rows only
        for f in forms:
            assert normalize(f) == one or f == one[1:], (s, forms)
        assert normalize(dialled(one)) == one, s
        assert is_e164(one) or one == clean(s), s  # nothing is lost


def test_variants_are_the_forms_older_rows_hold() -> None:
    for n in ("+8613800138000", "+862012345678", "+864008108888", "+8675512345678"):
        assert all(normalize(f) == n for f in variants(n)), n
    assert variants("+8613800138000") == (
        "+8613800138000", "8613800138000", "008613800138000", "13800138000")
    assert variants("+862012345678") == (
        "+862012345678", "862012345678", "00862012345678", "02012345678")
    assert variants("+16502530000") == ("+16502530000", "16502530000", "0016502530000")
    assert variants("1001") == ("1001",)


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
