"""XML <-> JSON and YAML <-> JSON: the documented mapping, and a ConversionError (no output) for bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from converters.errors import ConversionError
from converters.formats import markup
from converters.formats.markup import json_to_xml, json_to_yaml, xml_to_json, yaml_to_json

Converter = Callable[..., dict[str, Any]]

CATALOG = """<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment, dropped -->
<catalog xmlns:x="urn:x" version="2">
  <book id="1"><title>Tom &amp; Jerry</title><price>9.5</price></book>
  <book id="2">
    <title>Émile</title>
    <note lang="fr">mixed <b>bold</b> tail</note>
  </book>
  <empty/>
  <x:extra>namespaced</x:extra>
</catalog>
"""

CATALOG_JSON = {
    "catalog": {
        "@version": "2",
        "book": [
            {"@id": "1", "title": "Tom & Jerry", "price": "9.5"},
            {"@id": "2", "title": "Émile", "note": {"@lang": "fr", "#text": "mixed  tail", "b": "bold"}},
        ],
        "empty": None,
        "{urn:x}extra": "namespaced",
    }
}


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def assert_fails(convert: Converter, source: Path, target: Path, match: str, **options: Any) -> ConversionError:
    """The conversion raises ConversionError matching ``match`` and leaves no file behind."""
    before = set(target.parent.iterdir())
    with pytest.raises(ConversionError, match=match) as caught:
        convert(source, target, **options)
    assert set(target.parent.iterdir()) == before, "a failed conversion left a file behind"
    return caught.value


def nested_json(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "1" + "}" * (depth - 1)


# --- XML -> JSON ----------------------------------------------------------------------------------------


def test_xml_to_json__follows_the_documented_mapping(tmp_path: Path) -> None:
    summary = xml_to_json(write(tmp_path / "in.xml", CATALOG), tmp_path / "out.json")
    assert summary == {"target": str(tmp_path / "out.json"), "records": 10}
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == CATALOG_JSON


def test_xml_to_json__round_trips_through_json_to_xml(tmp_path: Path) -> None:
    xml_to_json(write(tmp_path / "in.xml", CATALOG), tmp_path / "a.json")
    assert json_to_xml(tmp_path / "a.json", tmp_path / "b.xml")["records"] == 10
    xml_to_json(tmp_path / "b.xml", tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text(encoding="utf-8")) == CATALOG_JSON


def test_xml_to_json__reads_declared_encodings(tmp_path: Path) -> None:
    source = write(tmp_path / "in.xml", '<?xml version="1.0" encoding="ISO-8859-1"?><a>café</a>'.encode("latin-1"))
    xml_to_json(source, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == {"a": "café"}


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><lolz>&lol2;</lolz>"""


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"^in\.xml: empty XML file$"),
        (b"  \n", r"^in\.xml: empty XML file$"),
        (b"<a><b>1</b><c>", r"^in\.xml line 1, column 15: invalid XML: no element found$"),
        (b"<a>\n<b></a>", r"^in\.xml line 2, column 6: invalid XML: mismatched tag$"),
        (b'{"a": 1}', r"^in\.xml line 1, column 1: invalid XML: not well-formed"),
        (b"<a>caf\xe9</a>", r"^in\.xml line 1, column 7: invalid XML: not well-formed"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"invalid XML"),
        (b"<a>&undefined;</a>", r"undefined entity"),
        (BILLION_LAUGHS.encode(), r"^in\.xml: XML entity declarations are not allowed \('lol'\)$"),
        (b"<a>" * 300 + b"</a>" * 300, r"^in\.xml: XML elements nested deeper than 200 levels$"),
    ],
    ids=["empty", "blank", "truncated", "mismatched", "json", "latin1-as-utf8", "png", "undefined-entity",
         "entity-bomb", "too-deep"],
)  # fmt: skip
def test_xml_to_json__rejects_bad_input(tmp_path: Path, content: bytes, match: str) -> None:
    assert_fails(xml_to_json, write(tmp_path / "in.xml", content), tmp_path / "out.json", match)


def test_xml_to_json__rejects_entity_bomb(tmp_path: Path) -> None:
    # The classic 10^9 version: refused at the declaration, before any expansion.
    levels = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY l0 "lol">{levels}]><b>&l9;</b>'
    assert_fails(xml_to_json, write(tmp_path / "in.xml", bomb), tmp_path / "out.json", r"entity declarations")


@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE r [<!ENTITY e SYSTEM "file://{secret}">]><r>&e;</r>',
        '<!DOCTYPE r [<!ENTITY % p SYSTEM "file://{secret}"> %p;]><r>x</r>',
        '<!DOCTYPE r SYSTEM "file://{secret}"><r>x</r>',
        '<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file://{secret}" parse="text"/></r>',
    ],
    ids=["external-entity", "parameter-entity", "external-dtd", "xinclude"],
)
def test_xml_to_json__never_reads_local_files(tmp_path: Path, template: str) -> None:
    secret = write(tmp_path / "secret.txt", "TOP-SECRET-CONTENT")
    source = write(tmp_path / "in.xml", '<?xml version="1.0"?>' + template.format(secret=secret))
    try:
        xml_to_json(source, tmp_path / "out.json")
        message = ""
    except ConversionError as exc:  # refusing is fine too; leaking is not
        message = str(exc)
    assert "TOP-SECRET" not in message
    for path in tmp_path.iterdir():
        if path != secret:
            assert b"TOP-SECRET" not in path.read_bytes()


# --- JSON -> XML ----------------------------------------------------------------------------------------


def test_json_to_xml__escapes_and_maps_scalars(tmp_path: Path) -> None:
    data = {"doc": {"@title": 'a "quoted" <title>', "#text": "x < y & z", "n": 1.5, "ok": True, "none": None}}
    summary = json_to_xml(write(tmp_path / "in.json", json.dumps(data)), tmp_path / "out.xml")
    assert summary == {"target": str(tmp_path / "out.xml"), "records": 4}
    text = (tmp_path / "out.xml").read_text(encoding="utf-8")
    assert "x &lt; y &amp; z" in text
    assert 'title="a &quot;quoted&quot; &lt;title&gt;"' in text
    xml_to_json(tmp_path / "out.xml", tmp_path / "back.json")
    back = json.loads((tmp_path / "back.json").read_text(encoding="utf-8"))
    assert back == {
        "doc": {"@title": 'a "quoted" <title>', "#text": "x < y & z", "n": "1.5", "ok": "true", "none": None}
    }


@pytest.mark.parametrize(
    ("data", "options", "expected"),
    [
        ([1, "two"], {}, {"root": {"item": ["1", "two"]}}),
        ([1, [2, 3]], {"root": "list", "item": "li"}, {"list": {"li": ["1", {"li": ["2", "3"]}]}}),
        ({"a": 1, "b": 2}, {}, {"root": {"a": "1", "b": "2"}}),
        ({"users": [{"name": "x"}, {"name": "y"}]}, {}, {"root": {"users": [{"name": "x"}, {"name": "y"}]}}),
        ({"one": {"a": "1"}}, {"root": "wrapper"}, {"wrapper": {"one": {"a": "1"}}}),
        ("just text", {}, {"root": "just text"}),
        ({"{urn:x}tag": "v"}, {}, {"{urn:x}tag": "v"}),
    ],
)
def test_json_to_xml__wraps_and_names_elements(
    tmp_path: Path, data: Any, options: dict[str, Any], expected: dict[str, Any]
) -> None:
    json_to_xml(write(tmp_path / "in.json", json.dumps(data)), tmp_path / "out.xml", **options)
    xml_to_json(tmp_path / "out.xml", tmp_path / "back.json")
    assert json.loads((tmp_path / "back.json").read_text(encoding="utf-8")) == expected


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"first name": "x"}, r"^in\.json: key 'first name' is not a valid XML name"),
        ({"a": {"1abc": "x"}}, r"key '1abc' is not a valid XML name"),
        ({"a": {"ns:tag": "x"}}, r"key 'ns:tag' is not a valid XML name"),
        ({"a": {"": "x"}}, r"key '' is not a valid XML name"),
        ({"a": {"@bad attr": "x"}}, r"key '@bad attr' is not a valid XML name"),
        ({"a": {"#comment": "x"}}, r"key '#comment' is not a valid XML name"),
        ({"a": {"@x": [1]}}, r"'@x' must be a string, number, boolean or null"),
        ({"a": {"#text": {"b": 1}}}, r"'#text' must be a string, number, boolean or null"),
        ({"a": "bell\x07"}, r"contains U\+0007, which XML can't represent"),
        (json.loads(nested_json(250)), r"^in\.json: JSON nested deeper than 200 levels$"),
    ],
)
def test_json_to_xml__rejects_what_xml_cannot_hold(tmp_path: Path, data: Any, match: str) -> None:
    assert_fails(json_to_xml, write(tmp_path / "in.json", json.dumps(data)), tmp_path / "out.xml", match)


# --- YAML <-> JSON --------------------------------------------------------------------------------------


def test_yaml_to_json__converts_dates_keys_and_aliases(tmp_path: Path) -> None:
    source = write(
        tmp_path / "in.yaml",
        "defaults: &d {retries: 3}\njob:\n  <<: *d\n  when: 2024-02-29\n  at: 2024-02-29 10:30:00+01:00\n"
        "  1: one\n  ~: nothing\n  name: Zoë\nblob: !!binary aGk=\n",
    )
    assert yaml_to_json(source, tmp_path / "out.json") == {"target": str(tmp_path / "out.json"), "records": 3}
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == {
        "defaults": {"retries": 3},
        "job": {"retries": 3, "when": "2024-02-29", "at": "2024-02-29T10:30:00+01:00", "1": "one",
                "null": "nothing", "name": "Zoë"},
        "blob": "aGk=",
    }  # fmt: skip


YAML_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 9)}]\n" for n in range(8)
)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"^in\.yaml: empty YAML file$"),
        (b"# only a comment\n", r"expected a YAML mapping or sequence at the top level, got null"),
        (b"just a string", r"expected a YAML mapping or sequence at the top level, got str"),
        (b"a: !!python/object/apply:os.system ['echo pwned']\n", r"^in\.yaml line 1, column 4: .*python/object"),
        (b"a: [1, 2\nb: 3\n", r"^in\.yaml line 2, column 2: invalid YAML"),
        (b"a: 1\n---\nb: 2\n", r"^in\.yaml line 2, column 1: invalid YAML: expected a single document in the"),
        (b"when: 2024-13-45\n", r"invalid YAML value"),
        (b"x: .nan\n", r"nan has no JSON representation"),
        (b"a: &a [*a]\n", r"nested deeper than 200 levels \(or a recursive alias\)"),
        (b"[" * 300 + b"]" * 300, r"nested deeper than 200|nested too deeply"),
        (b"a: caf\xe9\n", r"^in\.yaml line 1: not UTF-8 text"),
        (b"{1: a, '1': b}\n", r"keys collide"),
    ],
    ids=["empty", "comment-only", "scalar", "python-tag", "unclosed", "two-docs", "bad-date", "nan",
         "recursive", "too-deep", "invalid-utf8", "key-collision"],
)  # fmt: skip
def test_yaml_to_json__rejects_bad_input(tmp_path: Path, content: bytes, match: str) -> None:
    assert_fails(yaml_to_json, write(tmp_path / "in.yaml", content), tmp_path / "out.json", match)


def test_yaml_to_json__rejects_alias_bomb(tmp_path: Path, monkeypatch: Any) -> None:
    # 9**9 values from a 300-byte file; the real limit is 5 million, lowered here to keep the test fast.
    monkeypatch.setattr(markup, "MAX_YAML_NODES", 100_000)
    source = write(tmp_path / "in.yaml", YAML_BOMB)
    assert_fails(yaml_to_json, source, tmp_path / "out.json", r"^in\.yaml: YAML expands to more than 100,000 values")


def test_json_to_yaml__keeps_order_and_unicode(tmp_path: Path) -> None:
    source = write(tmp_path / "in.json", '{"z": 1, "a": ["é", null, true], "m": {"k": 1.5}}')
    assert json_to_yaml(source, tmp_path / "out.yaml")["records"] == 3
    text = (tmp_path / "out.yaml").read_text(encoding="utf-8")
    assert text.index("z:") < text.index("a:") < text.index("m:")
    assert "é" in text
    assert yaml.safe_load(text) == {"z": 1, "a": ["é", None, True], "m": {"k": 1.5}}


def test_json_to_yaml__accepts_the_maximum_depth(tmp_path: Path) -> None:
    json_to_yaml(write(tmp_path / "in.json", nested_json(200)), tmp_path / "out.yaml")
    yaml_to_json(tmp_path / "out.yaml", tmp_path / "back.json")
    assert json.loads((tmp_path / "back.json").read_text()) == json.loads(nested_json(200))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"^in\.json: empty JSON file$"),
        (b'{"a": 1,\n "b": }', r"^in\.json line 2, column 7: invalid JSON: Expecting value$"),
        (b"<a/>", r"line 1, column 1: invalid JSON"),
        (nested_json(201).encode(), r"^in\.json: JSON nested deeper than 200 levels$"),
        (b"[" * 100_000 + b"]" * 100_000, r"^in\.json: JSON nested too deeply$"),
        (b'{"a": "\xff"}', r"^in\.json line 1: not UTF-8 text"),
    ],
)
def test_json_to_yaml__rejects_bad_input(tmp_path: Path, content: bytes, match: str) -> None:
    assert_fails(json_to_yaml, write(tmp_path / "in.json", content), tmp_path / "out.yaml", match)


# --- shared: options, limits, unusable sources ----------------------------------------------------------

CONVERTERS = [xml_to_json, json_to_xml, yaml_to_json, json_to_yaml]


@pytest.mark.parametrize(
    ("convert", "options", "match"),
    [
        (xml_to_json, {"indent": 2}, r"unknown option\(s\) indent; allowed: none"),
        (yaml_to_json, {"lines": True}, r"unknown option\(s\) lines"),
        (json_to_yaml, {"sort_keys": True}, r"unknown option\(s\) sort_keys"),
        (json_to_xml, {"colour": 1}, r"unknown option\(s\) colour; allowed: item, root"),
        (json_to_xml, {"root": "bad name"}, r"option root must be a valid XML element name"),
        (json_to_xml, {"item": 3}, r"option item must be a valid XML element name"),
    ],
)
def test_converters__reject_bad_options(
    tmp_path: Path, convert: Converter, options: dict[str, Any], match: str
) -> None:
    assert_fails(convert, write(tmp_path / "in", '{"a": 1}'), tmp_path / "out", match, **options)


@pytest.mark.parametrize("convert", CONVERTERS)
def test_converters__refuse_documents_over_the_size_limit(tmp_path: Path, monkeypatch: Any, convert: Converter) -> None:
    monkeypatch.setattr(markup, "MAX_DOCUMENT_BYTES", 10)
    assert_fails(
        convert, write(tmp_path / "in", '{"a": "0123456789"}'), tmp_path / "out", r"larger than the 0 MiB limit"
    )
