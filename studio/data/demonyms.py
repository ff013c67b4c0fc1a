"""The English adjectives people use for each country or territory: "the italian flag", "a french flag".

Hand-written from general knowledge (no data file): the emoji names say "flag: Italy", people type "the italian
flag", so the built-in image model's flag captions can say both. Keys are ISO 3166-1 alpha-2 region codes as the
flag emoji spell them (plus "EU", "UN" and the UK subdivision flags "GB-ENG", "GB-SCT", "GB-WLS"); values are
lower-case, the main adjective first, then at most two very common alternatives ("us", "uk", "aussie").

An adjective is given to one code only: one that several entries share ("congolese" for CD and CG, "dominican" for
DO and Dominica, "korean" for KP and KR) is left out of all of them, and a distinct form used where one exists
("drc", "north korean"). Longer forms may contain shorter ones ("american samoan", "south sudanese"); match whole
phrases, longest first, if you search text for them.
"""

from __future__ import annotations

REGIONAL_INDICATOR_A = 0x1F1E6  # 🇦; a flag is two of these, one per letter of the region code
BLACK_FLAG = "\U0001f3f4"  # 🏴 followed by tag letters ("gbeng") and CANCEL TAG makes a subdivision flag
TAG_OFFSET = 0xE0000  # tag character = ASCII code + this
CANCEL_TAG = "\U000e007f"

DEMONYMS: dict[str, tuple[str, ...]] = {
    "AD": ("andorran",), "AE": ("emirati", "uae"), "AF": ("afghan",), "AG": ("antiguan", "barbudan"),
    "AI": ("anguillan",), "AL": ("albanian",), "AM": ("armenian",), "AO": ("angolan",), "AQ": ("antarctic",),
    "AR": ("argentine", "argentinian"), "AS": ("american samoan",), "AT": ("austrian",),
    "AU": ("australian", "aussie"), "AW": ("aruban",), "AX": ("alandic",), "AZ": ("azerbaijani", "azeri"),
    "BA": ("bosnian",), "BB": ("barbadian", "bajan"), "BD": ("bangladeshi",), "BE": ("belgian",),
    "BF": ("burkinabe",), "BG": ("bulgarian",), "BH": ("bahraini",), "BI": ("burundian",), "BJ": ("beninese",),
    "BM": ("bermudian",), "BN": ("bruneian",), "BO": ("bolivian",), "BR": ("brazilian",), "BS": ("bahamian",),
    "BT": ("bhutanese",), "BW": ("botswanan",), "BY": ("belarusian",), "BZ": ("belizean",), "CA": ("canadian",),
    "CD": ("drc",), "CF": ("central african",), "CH": ("swiss",), "CI": ("ivorian",), "CL": ("chilean",),
    "CM": ("cameroonian",), "CN": ("chinese",), "CO": ("colombian",), "CR": ("costa rican",), "CU": ("cuban",),
    "CV": ("cape verdean",), "CW": ("curacaoan",), "CY": ("cypriot",), "CZ": ("czech",), "DE": ("german",),
    "DJ": ("djiboutian",), "DK": ("danish",), "DZ": ("algerian",), "EC": ("ecuadorian",), "EE": ("estonian",),
    "EG": ("egyptian",), "EH": ("sahrawi", "western saharan"), "ER": ("eritrean",), "ES": ("spanish",),
    "ET": ("ethiopian",), "EU": ("european", "eu"), "FI": ("finnish",), "FJ": ("fijian",), "FK": ("falkland",),
    "FM": ("micronesian",), "FO": ("faroese",), "FR": ("french",), "GA": ("gabonese",), "GB": ("british", "uk"),
    "GD": ("grenadian",), "GE": ("georgian",), "GF": ("french guianese",), "GH": ("ghanaian",),
    "GI": ("gibraltarian",), "GL": ("greenlandic",), "GM": ("gambian",), "GN": ("guinean",),
    "GP": ("guadeloupean",), "GQ": ("equatorial guinean", "equatoguinean"), "GR": ("greek",),
    "GT": ("guatemalan",), "GU": ("guamanian",), "GW": ("bissau-guinean",), "GY": ("guyanese",),
    "HK": ("hong kong",), "HN": ("honduran",), "HR": ("croatian",), "HT": ("haitian",), "HU": ("hungarian",),
    "IC": ("canarian",), "ID": ("indonesian",), "IE": ("irish",), "IL": ("israeli",), "IM": ("manx",),
    "IN": ("indian",), "IQ": ("iraqi",), "IR": ("iranian", "persian"), "IS": ("icelandic",), "IT": ("italian",),
    "JM": ("jamaican",), "JO": ("jordanian",), "JP": ("japanese",), "KE": ("kenyan",), "KG": ("kyrgyz",),
    "KH": ("cambodian", "khmer"), "KI": ("i-kiribati",), "KM": ("comorian",), "KN": ("kittitian", "nevisian"),
    "KP": ("north korean",), "KR": ("south korean",), "KW": ("kuwaiti",), "KY": ("caymanian",),
    "KZ": ("kazakh", "kazakhstani"), "LA": ("lao", "laotian"), "LB": ("lebanese",),
    "LC": ("saint lucian", "st lucian"), "LI": ("liechtensteiner",), "LK": ("sri lankan",), "LR": ("liberian",),
    "LS": ("basotho",), "LT": ("lithuanian",), "LU": ("luxembourgish", "luxembourger"), "LV": ("latvian",),
    "LY": ("libyan",), "MA": ("moroccan",), "MC": ("monegasque", "monacan"), "MD": ("moldovan",),
    "ME": ("montenegrin",), "MG": ("malagasy",), "MH": ("marshallese",), "MK": ("macedonian", "north macedonian"),
    "ML": ("malian",), "MM": ("burmese", "myanmar"), "MN": ("mongolian",), "MO": ("macanese", "macau"),
    "MQ": ("martinican",), "MR": ("mauritanian",), "MS": ("montserratian",), "MT": ("maltese",),
    "MU": ("mauritian",), "MV": ("maldivian",), "MW": ("malawian",), "MX": ("mexican",), "MY": ("malaysian",),
    "MZ": ("mozambican",), "NA": ("namibian",), "NC": ("new caledonian",), "NE": ("nigerien",),
    "NG": ("nigerian",), "NI": ("nicaraguan",), "NL": ("dutch",), "NO": ("norwegian",), "NP": ("nepali", "nepalese"),
    "NR": ("nauruan",), "NU": ("niuean",), "NZ": ("new zealand", "kiwi"), "OM": ("omani",), "PA": ("panamanian",),
    "PE": ("peruvian",), "PF": ("french polynesian",), "PG": ("papua new guinean", "papuan"),
    "PH": ("filipino", "philippine"), "PK": ("pakistani",), "PL": ("polish",), "PR": ("puerto rican",),
    "PS": ("palestinian",), "PT": ("portuguese",), "PW": ("palauan",), "PY": ("paraguayan",), "QA": ("qatari",),
    "RE": ("reunionese",), "RO": ("romanian",), "RS": ("serbian",), "RU": ("russian",), "RW": ("rwandan",),
    "SA": ("saudi", "saudi arabian"), "SC": ("seychellois",), "SD": ("sudanese",), "SE": ("swedish",),
    "SG": ("singaporean",), "SH": ("saint helenian", "st helenian"), "SI": ("slovenian", "slovene"),
    "SK": ("slovak", "slovakian"), "SL": ("sierra leonean",), "SM": ("sammarinese",), "SN": ("senegalese",),
    "SO": ("somali",), "SR": ("surinamese",), "SS": ("south sudanese",), "ST": ("santomean",),
    "SV": ("salvadoran",), "SY": ("syrian",), "SZ": ("swazi", "eswatini"), "TA": ("tristanian",),
    "TD": ("chadian",), "TG": ("togolese",), "TH": ("thai",), "TJ": ("tajik", "tajikistani"), "TK": ("tokelauan",),
    "TL": ("timorese", "east timorese"), "TM": ("turkmen",), "TN": ("tunisian",), "TO": ("tongan",),
    "TR": ("turkish",), "TT": ("trinidadian", "tobagonian"), "TV": ("tuvaluan",), "TW": ("taiwanese",),
    "TZ": ("tanzanian",), "UA": ("ukrainian",), "UG": ("ugandan",), "UN": ("un",), "US": ("american", "us"),
    "UY": ("uruguayan",), "UZ": ("uzbek",), "VA": ("vatican",), "VC": ("vincentian",), "VE": ("venezuelan",),
    "VN": ("vietnamese",), "VU": ("vanuatuan", "ni-vanuatu"), "WF": ("wallisian", "futunan"), "WS": ("samoan",),
    "XK": ("kosovan", "kosovar"), "YE": ("yemeni",), "YT": ("mahoran",), "ZA": ("south african",),
    "ZM": ("zambian",), "ZW": ("zimbabwean",),
    # UK subdivision flags (🏴 + tag sequence)
    "GB-ENG": ("english",), "GB-SCT": ("scottish", "scots"), "GB-WLS": ("welsh",),
}

# Flag emoji with no entry above, and why:
#   no adjective in everyday use, people say the name ("the cook islands flag"):
#     AC Ascension, BL Saint Barthélemy, BQ Caribbean Netherlands, CC Cocos Islands, CK Cook Islands,
#     CQ Sark, CX Christmas Island, EA Ceuta & Melilla, GG Guernsey, JE Jersey, MF Saint Martin,
#     MP Northern Mariana Islands, NF Norfolk Island, PM Saint Pierre & Miquelon, PN Pitcairn, SB Solomon Islands,
#     SX Sint Maarten, TC Turks & Caicos, VG British Virgin Islands, VI US Virgin Islands
#   uninhabited or administrative: BV Bouvet Island, CP Clipperton, DG Diego Garcia, GS South Georgia,
#     HM Heard & McDonald Islands, IO British Indian Ocean Territory, SJ Svalbard & Jan Mayen,
#     TF French Southern Territories, UM US Outlying Islands
#   only an adjective shared with another flag: CG Congo-Brazzaville ("congolese", also CD),
#     DO Dominican Republic and DM Dominica (both "dominican")
OMITTED: frozenset[str] = frozenset({
    "AC", "BL", "BQ", "CC", "CK", "CQ", "CX", "EA", "GG", "JE", "MF", "MP", "NF", "PM", "PN", "SB", "SX", "TC", "VG",
    "VI", "BV", "CP", "DG", "GS", "HM", "IO", "SJ", "TF", "UM", "CG", "DO", "DM",
})


def _flag_code(char: str) -> str | None:
    """The region code of a flag emoji: "IT" for 🇮🇹, "GB-ENG" for the England tag flag; None otherwise."""
    if len(char) == 2 and all(REGIONAL_INDICATOR_A <= ord(c) < REGIONAL_INDICATOR_A + 26 for c in char):
        return "".join(chr(ord(c) - REGIONAL_INDICATOR_A + ord("A")) for c in char)
    if char.startswith(BLACK_FLAG) and char.endswith(CANCEL_TAG):
        tags = char[len(BLACK_FLAG):-len(CANCEL_TAG)]
        letters = "".join(chr(ord(c) - TAG_OFFSET) for c in tags if 0xE0020 < ord(c) < 0xE007F)
        if len(letters) == len(tags) > 2 and letters.isalnum():  # "gbeng": region "gb", subdivision "eng"
            return f"{letters[:2]}-{letters[2:]}".upper()
    return None


def demonyms_for(char: str) -> tuple[str, ...]:
    """The adjectives for a flag emoji (two regional indicators, or a subdivision tag sequence), () otherwise."""
    code = _flag_code(char)
    return DEMONYMS.get(code, ()) if code else ()
