"""The WhatsApp ID a send's `to` reaches, as Meta derives it.

Meta, "Phone number formats": a plus sign is highly recommended; without it the number is
read with the business phone number's own country calling code, so a message can reach an
unintended recipient.
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/phone-numbers#phone-number-formats
(as compiled in shared/meta-cloud-api.md). Meta's own examples send `"to": "16505551234"`
from a +1 number and answer `wa_id` 16505551234
(https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/utility-templates/utility-templates),
so the digits are read the way a caller in the business number's country dials them: the
country's trunk prefix (`1` in North America, `0` in most others) or a repeated own country
code is dropped before the code is prepended. So `447700900123` sent from a +1 number
reaches `1447700900123`, `07700900123` from a +44 number reaches `447700900123`.

Dialling rules come from libphonenumber (the `phonenumbers` package) when it is installed;
without it a small rule does the same for the cases above (trunk `1` for +1, `0` elsewhere,
a repeated own country code). The business number's country calling code is read from its
`display_phone_number` with the ITU-T E.164 list of assigned codes below (prefix-free, so
the first 1-3 digits match at most one code). A number without a display number gets no
prefix (the simulator cannot know its country; Meta always can).
"""

from __future__ import annotations

from types import ModuleType

phonenumbers: ModuleType | None
try:
    import phonenumbers
except ImportError:  # pragma: no cover - the project depends on it; the rule below stands in
    phonenumbers = None

# ITU-T E.164 assigned country calling codes (zone 1 is NANP: one code for the US, Canada
# and the Caribbean; 7 is Russia and Kazakhstan).
COUNTRY_CALLING_CODES: frozenset[str] = frozenset(
    str(code)
    for code in (
        1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51,
        52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92,
        93, 94, 95, 98, 211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228,
        229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245,
        246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 258, 260, 261, 262, 263,
        264, 265, 266, 267, 268, 269, 290, 291, 297, 298, 299, 350, 351, 352, 353, 354, 355,
        356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377, 378, 380, 381, 382, 383,
        385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505, 506, 507, 508, 509,
        590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675, 676, 677,
        678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808, 850,
        852, 853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964,
        965, 966, 967, 968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992, 993, 994, 995,
        996, 998,
    )
)  # fmt: skip


def digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def country_calling_code(number: str) -> str:
    """The E.164 country calling code `number` starts with ("" when none matches)."""
    found = digits(number)
    for size in (1, 2, 3):
        if found[:size] in COUNTRY_CALLING_CODES:
            return found[:size]
    return ""


def wa_id_for(to: str, business_display_number: str) -> str:
    """The WhatsApp ID Meta delivers `to` to, sent from a number shown as
    `business_display_number`: the digits of a `to` with a leading plus; otherwise the
    digits dialled from the business number's country (its calling code prepended)."""
    found = digits(to)
    code = country_calling_code(business_display_number)
    if to.lstrip().startswith("+") or not code or not found:
        return found
    return code + national(found, code)


def national(found: str, code: str) -> str:
    """`found` (digits dialled without a plus) as a national number of country `code`."""
    if phonenumbers is not None:
        region = phonenumbers.region_code_for_country_code(int(code))
        try:
            parsed = phonenumbers.parse(found, region)
        except phonenumbers.NumberParseException:
            return found
        if str(parsed.country_code) == code:
            zeros = (
                "0" * (parsed.number_of_leading_zeros or 1) if parsed.italian_leading_zero else ""
            )
            return zeros + str(parsed.national_number)
        return found
    trunk = "1" if code == "1" else "0"
    if found.startswith(trunk) and len(found) > 7:
        return found[len(trunk) :]
    if found.startswith(code) and len(found) - len(code) >= 10:
        return found[len(code) :]
    return found


def region_of(number: str) -> str:
    """ISO 3166 region of a number's calling code ("US" for +1; "" when unknown)."""
    code = country_calling_code(number)
    if phonenumbers is None or not code:
        return ""
    region = str(phonenumbers.region_code_for_country_code(int(code)))
    return "" if region in ("ZZ", "001") else region
