"""The flag adjectives: every flag emoji is covered or explicitly omitted, no adjective names two flags."""

from collections import Counter

import emoji

from studio.data.demonyms import DEMONYMS, OMITTED, demonyms_for

REGIONAL_INDICATOR_A = 0x1F1E6
ENGLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
WALES = "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f"


def _two_letter_flags() -> set[str]:
    return {"".join(chr(ord(c) - REGIONAL_INDICATOR_A + ord("A")) for c in char) for char in emoji.EMOJI_DATA
            if len(char) == 2 and all(REGIONAL_INDICATOR_A <= ord(c) <= 0x1F1FF for c in char)}


def test_every_flag_has_an_entry_or_is_omitted():
    flags = _two_letter_flags()
    assert len(flags) > 250
    assert flags - DEMONYMS.keys() - OMITTED == set()
    assert not DEMONYMS.keys() & OMITTED
    assert OMITTED <= flags


def test_entries_are_well_formed():
    for code, adjectives in DEMONYMS.items():
        assert code == code.upper() and 1 <= len(adjectives) <= 3, code
        assert all(adj == adj.lower().strip() and adj for adj in adjectives), code
        assert len(set(adjectives)) == len(adjectives), code


def test_no_adjective_names_two_flags():
    counts = Counter(adj for adjectives in DEMONYMS.values() for adj in adjectives)
    assert [adj for adj, n in counts.items() if n > 1] == []


def test_demonyms_for_flags():
    assert "italian" in demonyms_for("🇮🇹")
    assert demonyms_for("🇺🇸")[0] == "american"
    assert demonyms_for(ENGLAND) == ("english",)
    assert "scottish" in demonyms_for(SCOTLAND)
    assert demonyms_for(WALES) == ("welsh",)
    assert ENGLAND in emoji.EMOJI_DATA


def test_demonyms_for_non_flags():
    for char in ("❤", "❤️", "🐶", "", "IT", "🇮", "🏴", "🏴‍☠️", "🇨🇬"):
        assert demonyms_for(char) == (), char
