"""The words emails are built from, per language: days, months, product names, footer lines.

Dates are spelled here rather than through the C library's locale, which a server rarely has
installed and which is process-wide.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

DEFAULT_LANGUAGE: Final = "en"
LANGUAGES: Final = ("en", "de", "fr")

_WEEKDAYS: Final = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
_MONTHS: Final = {
    "en": (
        "January", "February", "March", "April", "May", "June", "July",
        "August", "September", "October", "November", "December",
    ),
    "de": (
        "Januar", "Februar", "März", "April", "Mai", "Juni", "Juli",
        "August", "September", "Oktober", "November", "Dezember",
    ),
    "fr": (
        "janvier", "février", "mars", "avril", "mai", "juin", "juillet",
        "août", "septembre", "octobre", "novembre", "décembre",
    ),
}  # fmt: skip
PRODUCT_LABELS: Final = {
    "en": {"fridge": "fridge", "vending": "vending machine", "tyres": "vehicle"},
    "de": {"fridge": "Kühlgerät", "vending": "Verkaufsautomat", "tyres": "Fahrzeug"},
    "fr": {"fridge": "réfrigérateur", "vending": "distributeur", "tyres": "véhicule"},
}
TYRE_LABELS: Final = {
    "en": {"fl": "front-left tyre", "fr": "front-right tyre", "rl": "rear-left tyre",
           "rr": "rear-right tyre"},
    "de": {"fl": "Reifen vorne links", "fr": "Reifen vorne rechts", "rl": "Reifen hinten links",
           "rr": "Reifen hinten rechts"},
    "fr": {"fl": "pneu avant gauche", "fr": "pneu avant droit", "rl": "pneu arrière gauche",
           "rr": "pneu arrière droit"},
}  # fmt: skip
# What went wrong, by fault family (the fault name without its unit suffix). English emails
# quote the decision's own summary instead, which is more specific.
PROBLEMS: Final = {
    "de": {
        "fridge.cooling": "Die Kühlleistung lässt nach, obwohl der Kompressor läuft.",
        "vending.cooling": "Die Kühlung des Automaten lässt nach.",
        "vending.jammed_coil": "Eine Warenspirale klemmt.",
        "tyres.pressure": "Der Reifendruck sinkt.",
        "tyres.tread": "Das Reifenprofil nutzt sich ab.",
        "": "Die Messwerte weichen vom Normalbetrieb ab.",
    },
    "fr": {
        "fridge.cooling": "Le froid baisse alors que le compresseur tourne.",
        "vending.cooling": "Le refroidissement du distributeur faiblit.",
        "vending.jammed_coil": "Une spirale de distribution est bloquée.",
        "tyres.pressure": "La pression du pneu baisse.",
        "tyres.tread": "La bande de roulement s'use.",
        "": "Les mesures s'écartent du fonctionnement normal.",
    },
}
CATEGORY_NAMES: Final = {
    "en": {"safety": "safety notices", "service": "service notifications",
           "reminders": "reminders", "offers": "offers and news"},
    "de": {"safety": "Sicherheitshinweise", "service": "Servicebenachrichtigungen",
           "reminders": "Erinnerungen", "offers": "Angebote und Neuigkeiten"},
    "fr": {"safety": "alertes de sécurité", "service": "notifications de service",
           "reminders": "rappels", "offers": "offres et nouveautés"},
}  # fmt: skip
UI: Final = {
    "en": {
        "reference": "Reference",
        "reply": "Questions? Reply to this email and keep the reference in the subject.",
        "why_service": "You receive this service message about a product registered to you.",
        "why_marketing": "You receive this email because you agreed to hear about our offers.",
        "why_safety": "This is a safety notice: it is sent whatever your email preferences.",
        "unsubscribe": "Unsubscribe from {category}",
        "regards": "Kind regards,",
        "colon": ":",
    },
    "de": {
        "reference": "Referenz",
        "reply": "Fragen? Antworten Sie auf diese E-Mail und lassen Sie die Referenz im Betreff.",
        "why_service": "Sie erhalten diese Servicenachricht zu einem auf Sie registrierten "
        "Produkt.",
        "why_marketing": "Sie erhalten diese E-Mail, weil Sie dem Erhalt unserer Angebote "
        "zugestimmt haben.",
        "why_safety": "Dies ist ein Sicherheitshinweis: Er wird unabhängig von Ihren "
        "E-Mail-Einstellungen versandt.",
        "unsubscribe": "{category} abbestellen",
        "regards": "Freundliche Grüße",
        "colon": ":",
    },
    "fr": {
        "reference": "Référence",
        "reply": "Une question ? Répondez à cet e-mail en gardant la référence dans l'objet.",
        "why_service": "Vous recevez ce message de service au sujet d'un produit enregistré à "
        "votre nom.",
        "why_marketing": "Vous recevez cet e-mail car vous avez accepté de recevoir nos offres.",
        "why_safety": "Ceci est une alerte de sécurité : elle vous est envoyée quelles que "
        "soient vos préférences.",
        "unsubscribe": "Se désabonner des {category}",
        "regards": "Cordialement,",
        "colon": " :",
    },
}


def language_of(locale: str) -> str:
    """The supported language of a locale tag, else English.

    >>> [language_of(x) for x in ("de-CH", "fr", "it", "en-GB")]
    ['de', 'fr', 'en', 'en']
    """
    language = locale.split("-")[0].lower()
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def spell_day(local: datetime, language: str) -> str:
    """A calendar day as people write it in ``language``.

    >>> day = datetime(2026, 1, 1)
    >>> [spell_day(day, lang) for lang in ("en", "de", "fr")]
    ['Thursday 1 January 2026', 'Donnerstag, 1. Januar 2026', 'jeudi 1er janvier 2026']
    """
    weekday = _WEEKDAYS[language][local.weekday()]
    month = _MONTHS[language][local.month - 1]
    if language == "de":
        return f"{weekday}, {local.day}. {month} {local.year}"
    if language == "fr":
        day = "1er" if local.day == 1 else str(local.day)
        return f"{weekday} {day} {month} {local.year}"
    return f"{weekday} {local.day} {month} {local.year}"


def spell_window(start: datetime, end: datetime, language: str) -> str:
    """A booked slot: its day and hours (both in the same zone).

    >>> spell_window(datetime(2026, 2, 3, 10), datetime(2026, 2, 3, 12), "de")
    'Dienstag, 3. Februar 2026, 10:00–12:00 Uhr'
    """
    hours = f"{start:%H:%M}–{end:%H:%M}"
    if language == "de":
        hours += " Uhr"
    elif language == "fr":
        hours = f"de {start:%H} h {start:%M} à {end:%H} h {end:%M}"
    if start.date() != end.date():
        return (
            f"{spell_day(start, language)} {start:%H:%M} – {spell_day(end, language)} {end:%H:%M}"
        )
    return f"{spell_day(start, language)}, {hours}"


def problem_text(fault: str, summary: str, language: str) -> str:
    """What went wrong, in ``language``: the decision's summary in English, else a phrase."""
    if language == DEFAULT_LANGUAGE:
        return summary
    phrases = PROBLEMS[language]
    family = fault
    while family and family not in phrases:
        family = family.rpartition(".")[0]
    return phrases[family]


_DEVICE_NOUNS: Final = {
    "de": {"fridge": "Gerät", "vending": "Gerät", "tyres": "Fahrzeug"},
    "fr": {"fridge": "appareil", "vending": "appareil", "tyres": "véhicule"},
}


def your_device(language: str, product_kind: str, nickname: str | None) -> str:
    """ "Your device" as the subject of a sentence, with its nickname if it has one.

    >>> your_device("de", "fridge", "Küche"), your_device("fr", "tyres", None)
    ('Ihr Gerät „Küche“', 'votre véhicule')
    """
    product = PRODUCT_LABELS[language].get(product_kind, product_kind)
    if language == "de":
        noun = _DEVICE_NOUNS["de"].get(product_kind, "Gerät")
        return f"Ihr {noun} „{nickname}“" if nickname else f"Ihr {product}"
    if language == "fr":
        noun = _DEVICE_NOUNS["fr"].get(product_kind, "appareil")
        return f"votre {noun} « {nickname} »" if nickname else f"votre {product}"
    return f"your {nickname or product}"
