"""What a document will cost in memory once parsed, counted before the parser runs.

``json.loads``, ElementTree and PyYAML build every value of a document as Python objects, at tens
to hundreds of bytes each, so a file of a few MiB made of tiny values (``[[],[],…]``,
``<a/><a/>…``, ``[a,a,…]``) takes gigabytes. A size cap on the file can't tell that file from a
text-heavy one of the same size; these estimates count the values instead, cheaply and from
above, and ``limits.check_estimate`` refuses a document whose estimate is over the budget.

The costs per value are the worst measured per converter (peak memory growth, in a subprocess,
over documents made of each kind of value; ``tests/converters/test_memory_estimates.py`` checks
that each estimate stays above what the conversion really uses).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from converters.limits import check_estimate, document_budget

#: Bytes per JSON value, by what the document becomes: parsed and written row by row ("csv"),
#: parsed and built as an ElementTree ("xml"), parsed and represented by PyYAML ("yaml").
JSON_VALUE_COST = {"csv": 96, "xml": 240, "yaml": 512}
#: Bytes per byte of ASCII text: the bytes read, the decoded text and the strings parsed from it.
ASCII_TEXT_COST = 3
#: The same for non-ASCII text: one astral character makes a whole string 4 bytes per character.
UNICODE_TEXT_COST = 9
#: xml_to_json: bytes per element (each ``<``) and per attribute (each ``=``): the ElementTree
#: node, the tag, the JSON value built from it.
XML_ELEMENT_COST = 384
XML_ATTRIBUTE_COST = 400
#: yaml_to_json: bytes per YAML node (PyYAML's node, its two marks, the constructed value).
YAML_NODE_COST = 1100
#: JSON no longer than this fits any budget (a value per character at the dearest rate plus the text,
#: 521 bytes a character: 17 MiB, under the 256 MiB a document gets at the smallest limit allowed),
#: so it isn't counted; that keeps the check off JSON Lines' ordinary lines.
ALWAYS_FITS = 32 * 1024


def check_json(source: Path, data: bytes | str, into: str, *, where: str = "") -> None:
    """Refuse a JSON text whose values would take more memory than the budget once parsed.

    ``where``: which part of ``source`` ``data`` is, e.g. ``"line 7"`` of a JSON Lines file.
    """
    if len(data) <= ALWAYS_FITS:
        return
    prefix = f"{where}: " if where else ""
    check_estimate(source, json_estimate(data, into), lambda: f"{prefix}{json_values(data):,} JSON values{_INTO[into]}")


def json_estimate(data: bytes | str, into: str) -> int:
    """Bytes of memory that converting JSON ``data`` ``into`` "csv", "xml" or "yaml" may take, from above."""
    return json_values(data) * JSON_VALUE_COST[into] + len(data) * _text_cost(data)


def json_values(data: bytes | str) -> int:
    """At least the number of values in JSON ``data``: each follows a ``[``, ``{``, ``,`` or ``:``, bar one.

    Counted in the text as a whole, so those characters inside strings count too: from above.
    """
    if isinstance(data, bytes):
        return sum(map(data.count, (b",", b":", b"[", b"{"))) + 1
    return sum(map(data.count, (",", ":", "[", "{"))) + 1


def check_xml(source: Path, data: bytes) -> None:
    """Refuse an XML document whose elements and attributes would take more memory than the budget."""
    check_estimate(
        source, xml_estimate(data), lambda: f"{data.count(b'<'):,} XML elements and {data.count(b'='):,} attributes"
    )


def xml_estimate(data: bytes) -> int:
    """Bytes of memory that converting XML ``data`` to JSON may take, from above."""
    # Every element starts with a "<", every attribute has a "=": counted anywhere, so from above.
    elements, attributes = data.count(b"<"), data.count(b"=")
    return elements * XML_ELEMENT_COST + attributes * XML_ATTRIBUTE_COST + len(data) * _text_cost(data)


def check_yaml(source: Path, text: str) -> None:
    """Refuse a YAML document with more nodes than the budget allows, counted by a streaming parse.

    ``yaml.parse`` yields events without building anything, so counting holds one event at a
    time; libyaml's parser when available (fast), else PyYAML's own. Aliases add no node (they
    refer to one), so an alias bomb counts small here and is bounded when it is expanded.
    A document the counting parse can't read is left to the real load, which says why.
    """
    budget = document_budget()
    if budget is None:
        return
    fixed = len(text) * UNICODE_TEXT_COST
    most = max(0, (budget - fixed) // YAML_NODE_COST)  # counting stops past this: the answer is known
    nodes = yaml_nodes(text, most=most)
    if nodes is not None:
        stopped = nodes > most
        counted = f"more than {most:,}" if stopped else f"{nodes:,}"
        check_estimate(source, nodes * YAML_NODE_COST + fixed, f"{counted} YAML nodes", at_least=stopped)


def yaml_nodes(text: str, *, most: int | None = None) -> int | None:
    """The number of nodes in YAML ``text`` (stopping once past ``most``), or ``None`` if it can't be parsed."""
    nodes = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            nodes += isinstance(event, _NODE_EVENTS)
            if most is not None and nodes > most:
                break
    except yaml.YAMLError:
        return None
    return nodes


_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_INTO = {"csv": "", "xml": " made into XML elements", "yaml": " made into YAML"}


def _text_cost(data: bytes | str) -> int:
    return ASCII_TEXT_COST if data.isascii() else UNICODE_TEXT_COST
