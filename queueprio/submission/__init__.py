"""The submission path: validate, resolve, admit (bands, quota), deduplicate, record, publish."""
