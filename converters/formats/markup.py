"""Markup converters: XML <-> JSON and YAML <-> JSON, with safe parsers and bounded nesting."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import xml.etree.ElementTree as ET  # builds output only: all parsing goes through defusedxml
from pathlib import Path
from typing import Any
from xml.parsers import expat

import defusedxml.ElementTree as SafeET
import yaml
from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden

from converters.atomic import atomic_output
from converters.errors import ConversionError
from converters.formats import estimates
from converters.formats.common import check_options, open_source, phase

#: Deepest nesting accepted (elements, or arrays/objects): deeper input is refused, never recursed into.
MAX_DEPTH = 200
#: These formats are parsed whole in memory, so their files are capped.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
#: Values a YAML document may expand to: aliases can make a small file a huge tree ("billion laughs").
MAX_YAML_NODES = 5_000_000

_NAME_START = (
    "A-Z_a-z\xc0-\xd6\xd8-\xf6\xf8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c\u200d\u2070-\u218f"
    "\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME_CHAR = _NAME_START + r"\-.0-9\xb7\u0300-\u036f\u203f\u2040"
# An XML NCName (no colon: a prefix would need a namespace declaration), optionally in Clark
# notation ``{uri}name``, which is how ElementTree spells namespaced names in both directions.
_XML_NAME = re.compile(r"(?:\{[^{}]+\})?[" + _NAME_START + "][" + _NAME_CHAR + "]*")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_to_json(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert an XML document to JSON. No options.

    Mapping: the document becomes ``{root_tag: value}``. An element with neither attributes nor
    children becomes its text (a string) or ``null`` if empty. Otherwise it becomes an object:
    attributes as ``"@name": "value"``, text as ``"#text"`` (omitted if blank), each child under its
    tag, and a tag that occurs more than once becomes an array in document order. Text is stripped of
    surrounding whitespace; all values are strings; namespaced names use ElementTree's ``{uri}name``.
    Lost: the order between differently named siblings, where text sits among children (mixed
    content is joined into ``#text``), comments and processing instructions.

    Parsed with defusedxml: entity declarations (entity bombs) and external references (XXE) are
    refused. Empty files, malformed XML, nesting deeper than 200 and documents whose elements would
    need more memory than a job may use (``estimates``) are errors. ``records`` = elements.
    """
    check_options(options, set())
    data = _read_document(source, "XML")
    estimates.check_xml(source, data)
    root = _parse_xml(data, source)
    document = {root.tag: _element_value(root, 1, source)}
    with atomic_output(target) as out:
        json.dump(document, out, ensure_ascii=False, indent=2)
        out.write("\n")
    return {"target": str(target), "records": sum(1 for _ in root.iter())}


def json_to_xml(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert JSON to an XML document: the inverse of :func:`xml_to_json`'s mapping.

    Options:
      ``root`` (str, XML name): wrap the document in an element of this name. Default: a top-level
      object with a single (non-array) member becomes the root element itself, as ``xml_to_json``
      writes it; anything else is wrapped in ``<root>``.
      ``item`` (str, XML name, default ``"item"``): the tag for members of an array that isn't the
      value of a key (a top-level array, an array inside an array).

    Object members: ``"@name"`` -> attribute, ``"#text"`` -> text, other keys -> child elements (an
    array value -> one element per member). Scalars become text: ``null`` -> empty element, booleans
    -> ``true``/``false``. A key that isn't a valid XML name (e.g. contains a space or a colon), a text
    with a character XML can't hold, nesting deeper than 200 and documents whose values would need
    more memory than a job may use (``estimates``) are errors. ``records`` = elements.
    """
    check_options(options, {"root", "item"})
    root_name = _name_option(options, "root", None)
    # An explicit {"item": null} means the default too (it reached ElementTree as a None tag).
    item = _name_option(options, "item", None) or "item"
    document = _load_json(source, into="xml")
    try:
        tag, value = _root_of(document, root_name)
        root = ET.Element(tag)
        _fill(root, value, item, 1)
    except ConversionError as exc:
        raise ConversionError(f"{source.name}: {exc}") from exc
    ET.indent(root)
    with atomic_output(target, binary=True) as out:
        ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
        out.write(b"\n")
    return {"target": str(target), "records": sum(1 for _ in root.iter())}


def yaml_to_json(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert a single-document YAML file to JSON. No options.

    Loaded with ``yaml.safe_load``: language-specific tags such as ``!!python/object`` are errors.
    The top level must be a mapping or a sequence (a file that is one plain string is almost always
    not YAML at all; an empty file is an error). Dates and timestamps become ISO 8601 strings,
    ``!!binary`` becomes base64 text, non-string keys become their JSON text (``1`` -> ``"1"``);
    ``.nan``/``.inf``, nesting deeper than 200, aliases expanding to more than 5 million values and
    documents with more nodes than a job's memory allows (``estimates``) are errors.
    ``records`` = top-level members.
    """
    check_options(options, set())
    document = _load_yaml(_read_document(source, "YAML"), source)
    if not isinstance(document, (dict, list)):
        kind = "null" if document is None else type(document).__name__
        raise ConversionError(f"{source.name}: expected a YAML mapping or sequence at the top level, got {kind}")
    converted = _to_json_value(document, 1, [MAX_YAML_NODES], source)
    with atomic_output(target) as out:
        json.dump(converted, out, ensure_ascii=False, indent=2)
        out.write("\n")
    return {"target": str(target), "records": len(converted)}


def json_to_yaml(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert JSON to YAML (``yaml.safe_dump``, keys in their JSON order, Unicode kept). No options.

    An empty file, invalid JSON, nesting deeper than 200 and documents whose values would need more
    memory than a job may use (``estimates``) are errors. ``records`` = top-level members (1 for a scalar).
    """
    check_options(options, set())
    document = _load_json(source, into="yaml")
    _check_depth(document, 1, source)
    with atomic_output(target) as out:
        try:
            yaml.safe_dump(document, out, sort_keys=False, allow_unicode=True)
        except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON ("\ud800")
            raise ConversionError(f"{source.name}: text that can't be encoded as UTF-8") from exc
    records = len(document) if isinstance(document, (dict, list)) else 1
    return {"target": str(target), "records": records}


def _name_option(options: dict[str, Any], key: str, default: str | None) -> str | None:
    value = options.get(key, default)
    if value is not None and not (isinstance(value, str) and _XML_NAME.fullmatch(value)):
        raise ConversionError(f"option {key} must be a valid XML element name, got {value!r}")
    return value


def _read_document(source: Path, kind: str) -> bytes:
    with open_source(source) as fh:
        data = fh.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ConversionError(f"{source.name} is larger than the {MAX_DOCUMENT_BYTES // 2**20} MiB limit for {kind}")
    if not data.strip():
        raise ConversionError(f"{source.name}: empty {kind} file")
    phase(f"parsing {kind}, then writing")
    return data


def _decode(data: bytes, source: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConversionError(f"{source.name} line {line}: not UTF-8 text ({exc.reason})") from exc


def _load_json(source: Path, *, into: str) -> Any:
    data = _read_document(source, "JSON")
    estimates.check_json(source, data, into)
    text = _decode(data, source)
    del data  # the text is all the parser needs: don't hold both
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{source.name} line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise ConversionError(f"{source.name}: JSON nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise ConversionError(f"{source.name}: invalid JSON: {exc}") from exc


def _parse_xml(data: bytes, source: Path) -> ET.Element:
    try:
        element: ET.Element = SafeET.fromstring(data)
        return element
    except ET.ParseError as exc:
        line, column = exc.position
        reason = expat.ErrorString(exc.code)
        raise ConversionError(f"{source.name} line {line}, column {column + 1}: invalid XML: {reason}") from exc
    except EntitiesForbidden as exc:
        raise ConversionError(f"{source.name}: XML entity declarations are not allowed ({exc.name!r})") from exc
    except ExternalReferenceForbidden as exc:
        raise ConversionError(f"{source.name}: XML external references are not allowed ({exc.sysid!r})") from exc
    except (DefusedXmlException, ValueError) as exc:
        raise ConversionError(f"{source.name}: unsafe or unsupported XML ({exc})") from exc


def _element_value(element: ET.Element, depth: int, source: Path) -> Any:
    if depth > MAX_DEPTH:
        raise ConversionError(f"{source.name}: XML elements nested deeper than {MAX_DEPTH} levels")
    # Mixed content: the element's text and its children's tails, joined.
    text = "".join([element.text or "", *(child.tail or "" for child in element)]).strip()
    if not element.attrib and len(element) == 0:
        return text or None
    value: dict[str, Any] = {f"@{name}": attribute for name, attribute in element.attrib.items()}
    if text:
        value["#text"] = text
    for child in element:
        child_value = _element_value(child, depth + 1, source)
        if child.tag not in value:
            value[child.tag] = child_value
        elif isinstance(value[child.tag], list):  # an element's value is never itself a list
            value[child.tag].append(child_value)
        else:
            value[child.tag] = [value[child.tag], child_value]
    return value


def _root_of(document: Any, root_name: str | None) -> tuple[str, Any]:
    if root_name is None and isinstance(document, dict) and len(document) == 1:
        [(key, value)] = document.items()
        if not key.startswith(("@", "#")) and not isinstance(value, list):
            return _xml_name(key), value
    return root_name or "root", document


def _fill(element: ET.Element, value: Any, item: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConversionError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, member in value.items():
            if key == "#text":
                element.text = _xml_text(member, key)
            elif key.startswith("@"):
                element.set(_xml_name(key[1:], key), _xml_text(member, key) or "")
            else:
                _append(element, _xml_name(key), member, item, depth)
    elif isinstance(value, list):
        for member in value:  # each member one element, even a member that is itself an array
            _fill(ET.SubElement(element, item), member, item, depth + 1)
    else:
        element.text = _xml_text(value, element.tag)


def _append(parent: ET.Element, tag: str, value: Any, item: str, depth: int) -> None:
    for member in value if isinstance(value, list) else [value]:
        _fill(ET.SubElement(parent, tag), member, item, depth + 1)


def _xml_name(name: str, key: str | None = None) -> str:
    if not _XML_NAME.fullmatch(name) or _NOT_XML_CHAR.search(name):
        raise ConversionError(f"key {key or name!r} is not a valid XML name (no spaces, colons or leading digits)")
    return name


def _xml_text(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if not isinstance(value, str):
        raise ConversionError(f"{key!r} must be a string, number, boolean or null, not an object or array")
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise ConversionError(f"the text of {key!r} contains U+{ord(bad.group()):04X}, which XML can't represent")
    return value


def _check_depth(value: Any, depth: int, source: Path) -> None:
    if depth > MAX_DEPTH:
        raise ConversionError(f"{source.name}: JSON nested deeper than {MAX_DEPTH} levels")
    members = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for member in members:
        _check_depth(member, depth + 1, source)


def _load_yaml(data: bytes, source: Path) -> Any:
    text = _decode(data, source)
    del data  # the text is all the parser needs: don't hold both
    estimates.check_yaml(source, text)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConversionError(f"{source.name}{where}: invalid YAML: {reason}") from exc
    except yaml.YAMLError as exc:
        raise ConversionError(f"{source.name}: invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ConversionError(f"{source.name}: YAML nested too deeply") from exc
    except (ValueError, TypeError) as exc:  # e.g. a timestamp like 2024-13-45, a 5000-digit integer
        raise ConversionError(f"{source.name}: invalid YAML value: {exc}") from exc


def _to_json_value(value: Any, depth: int, budget: list[int], source: Path) -> Any:
    """``value`` with YAML-only types made JSON; ``budget`` counts down the values still allowed."""
    if depth > MAX_DEPTH:
        raise ConversionError(f"{source.name}: YAML nested deeper than {MAX_DEPTH} levels (or a recursive alias)")
    budget[0] -= 1
    if budget[0] < 0:
        raise ConversionError(f"{source.name}: YAML expands to more than {MAX_YAML_NODES:,} values (aliases?)")
    if isinstance(value, dict):
        converted = {_json_key(key, source): _to_json_value(v, depth + 1, budget, source) for key, v in value.items()}
        if len(converted) != len(value):
            raise ConversionError(f"{source.name}: mapping keys collide once made strings (e.g. 1 and '1')")
        return converted
    if isinstance(value, (list, tuple, set)):
        members = sorted(value, key=repr) if isinstance(value, set) else value
        return [_to_json_value(member, depth + 1, budget, source) for member in members]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConversionError(f"{source.name}: {value} has no JSON representation")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _json_key(key: Any, source: Path) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, dt.date):
        return key.isoformat()
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise ConversionError(f"{source.name}: mapping key {key!r} can't be a JSON key")
