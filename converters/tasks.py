"""The shipped converters, registered as Celery tasks (found by ``autodiscover_tasks``)."""

from __future__ import annotations

from queueprio import Priority

from .formats import images, markup, tabular
from .registry import converter

csv_to_json = converter(name="csv_to_json", suffix=".json", priority=Priority.NORMAL)(tabular.csv_to_json)
json_to_csv = converter(name="json_to_csv", suffix=".csv", priority=Priority.NORMAL)(tabular.json_to_csv)
xlsx_to_csv = converter(name="xlsx_to_csv", suffix=".csv", priority=Priority.NORMAL)(tabular.xlsx_to_csv)
xml_to_json = converter(name="xml_to_json", suffix=".json", priority=Priority.NORMAL)(markup.xml_to_json)
json_to_xml = converter(name="json_to_xml", suffix=".xml", priority=Priority.NORMAL)(markup.json_to_xml)
yaml_to_json = converter(name="yaml_to_json", suffix=".json", priority=Priority.NORMAL)(markup.yaml_to_json)
json_to_yaml = converter(name="json_to_yaml", suffix=".yaml", priority=Priority.NORMAL)(markup.json_to_yaml)
# Images are big and rarely waited on interactively: they default to LOW.
image_to_webp = converter(name="image_to_webp", suffix=".webp", priority=Priority.LOW)(images.image_to_webp)
