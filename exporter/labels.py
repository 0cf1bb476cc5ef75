"""Label values of AMS ids: the exporter's one rule for turning a stream or room id into a label."""

from __future__ import annotations


def id_label(value: str) -> str:
    """The label value of an id: the id itself when printable and without '%'; else '%' and every character
    that is not printable percent-encoded (UTF-8), so each id keeps a distinct, visible label."""
    if value.isprintable() and "%" not in value:
        return value
    return "".join(c if c.isprintable() and c != "%" else _percent(c) for c in value)


def _percent(char: str) -> str:
    """%XX for each UTF-8 byte of one character (a lone surrogate included)."""
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
