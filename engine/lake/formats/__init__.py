"""Annotation interchange formats: parsers into `parsed.ParsedImage`, and the checks and
conversion to the lake's pixel geometry.

`metalake_json`, `coco` and `yolo` parse; `matching` finds the file an image refers to;
`geometry` converts to pixels. Parsers never touch the database; `engine.lake.annotations`
writes what they produce.
"""
