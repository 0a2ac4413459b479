"""Test bundle: one autotagging box per image; `parameters["mode"]` picks a misbehaviour."""

import base64
import io
import json
import os
import subprocess
import sys
import time
import uuid

import numpy as np


def model_fn(model_dir):
    # host_id tells hosts apart where pids cannot (a boxed host's pid is its namespace's own)
    return {"model_dir": model_dir, "calls": 0, "host_id": uuid.uuid4().hex}


def input_fn(request_body, request_content_type):
    content_type = request_content_type.split(";")[0].strip()
    if content_type == "application/x-npz":
        with np.load(io.BytesIO(request_body), allow_pickle=False) as archive:
            return archive["images"], json.loads(str(archive["parameters"].item()))
    if content_type == "application/json":
        from PIL import Image

        document = json.loads(request_body)
        images = [
            np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))
            for text in document["images"]
        ]
        return np.stack(images), document.get("parameters", {})
    raise ValueError(f"unsupported content type {request_content_type!r}")


def predict_fn(input_data, model):
    images, parameters = input_data
    model["calls"] += 1
    mode = parameters.get("mode", "ok")
    if mode == "raise":
        raise RuntimeError("predict_fn was told to fail")
    if mode == "sleep":
        if "child_marker" in parameters:  # a child process that must die with the host
            subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)", parameters["child_marker"]]
            )
        time.sleep(float(parameters.get("seconds", 60)))
    if mode == "exit":
        os._exit(3)
    if mode == "hog":  # 25 MB more every 20 ms, up to 4 GB
        hog = []
        for _ in range(160):
            hog.append(np.ones(25 << 20, dtype=np.uint8))
            time.sleep(0.02)
    if mode == "child_hog":  # a child process taking 5 MB more every 20 ms, up to 2 GB
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import time\nhog = []\nfor _ in range(400):\n"
                    "    hog.append(bytearray(b'x') * (5 << 20))\n    time.sleep(0.02)\n"
                    "time.sleep(60)"
                ),
            ]
        )
        time.sleep(60)
    if mode == "environ":
        return [
            {"boxes": [], "environ": sorted(os.environ), "PYTHONPATH": os.environ.get("PYTHONPATH")}
            for _ in images
        ]
    outputs = []
    for image in images:
        height, width = image.shape[:2]
        channel_means = image.reshape(-1, 3).mean(axis=0)
        confidence = round(float(image.mean()) / 255, 4)
        outputs.append(
            {
                "boxes": [
                    [
                        0.0,
                        0.0,
                        float(width),
                        float(height),
                        confidence,
                        int(np.argmax(channel_means)),
                    ]
                ],
                "masks": None,
                "probs": None,
                "pid": os.getpid(),
                "host_id": model["host_id"],
                "calls": model["calls"],
                "parameters": parameters,
            }
        )
    return outputs


def output_fn(prediction_output, content_type):
    return json.dumps(prediction_output)  # a JSON string, as SageMaker bundles often return
