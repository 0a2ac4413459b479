"""Annotation interchange formats: parsers into `parsed.ParsedImage`, and the checks and
conversion to the lake's pixel geometry.

- `metalake_json` — the upload / download JSON (`upload_annotations_for_folder`);
- `coco` — COCO detection / segmentation JSON;
- `yolo` — YOLO label folders (boxes and segments);
- `matching` — which collection file an image path or label stem refers to;
- `geometry` — normalized -> pixels, bounds, stored geometry.

Parsers never touch the database; `engine.lake.annotations` writes what they produce.
"""
