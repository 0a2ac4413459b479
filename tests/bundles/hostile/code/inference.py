"""Test bundle: a hostile model. `model_fn` tries to reach what model code must not reach
(the engine's key file, home, environment, services, other bundles, the worker) and reports
each attempt; every image is then tagged `contained`, plus `escaped_<what>` for each attempt
that succeeded. `targets.json` beside `code/` names what to try (written by the test)."""

import json
import os
import socket
import sys
import traceback
from pathlib import Path

import numpy as np

PROBES = [
    "uid",
    "client_json",
    "engine_home",
    "user_home",
    "environ",
    "tcp",
    "write",
    "other_bundles",
    "signal",
]
SECRET_NAMES = ("DATABASE_URL", "REDIS_URL", "AWS_SECRET_ACCESS_KEY", "METALAKE_")


def _try(action):
    """(reached, what happened)."""
    try:
        return True, str(action())[:200]
    except Exception as exc:  # the box said no: that is the point
        return False, f"{type(exc).__name__}: {exc}"[:200]


def _same_uid(engine_uid):
    if os.getuid() != engine_uid:
        raise PermissionError(f"uid {os.getuid()}, not the engine's {engine_uid}")
    return f"the engine's uid {engine_uid}"


def _user_secrets(home):
    """The engine user's cloud credentials and caches."""
    return [_read(Path(home) / ".aws" / "credentials"), os.listdir(Path(home) / ".cache")]


def _read(path):
    return Path(path).read_text()


def _environ_secrets():
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        found += [f"{entry}:{name}" for name in SECRET_NAMES if name in text]
    if not found:
        raise PermissionError(f"no secrets in any visible environ ({os.listdir('/proc')[:12]})")
    return found


def _connect(ports):
    reached = []
    for port in ports:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                reached.append(port)
    if not reached:
        raise ConnectionRefusedError(f"none of {ports} answered")
    return reached


def _write(places):
    written = []
    for place in places:
        path = Path(place) / f"hostile-{os.getpid()}.txt"
        try:
            path.write_text("written by model code")
        except OSError:
            continue
        written.append(str(path))
        path.unlink(missing_ok=True)
    if not written:
        raise PermissionError(f"could not write in any of {places}")
    return written


def _other_bundles(model_dir):
    siblings = [name for name in os.listdir(Path(model_dir).parent) if name != Path(model_dir).name]
    if not siblings:
        raise FileNotFoundError("no other bundle in sight")
    return siblings


def _probe(model_dir):
    targets = json.loads((Path(model_dir) / "targets.json").read_text())
    report = {"whoami": {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}}
    checks = {
        "uid": lambda: _same_uid(targets["engine_uid"]),
        "client_json": lambda: _read(targets["client_json"]),
        "engine_home": lambda: os.listdir(targets["engine_home"]),
        "user_home": lambda: _user_secrets(targets["user_home"]),
        "environ": _environ_secrets,
        "tcp": lambda: _connect(targets["ports"]),
        "write": lambda: _write(
            targets["writable_places"] + [model_dir, str(Path(model_dir).parent)]
        ),
        "other_bundles": lambda: _other_bundles(model_dir),
        "signal": lambda: os.kill(targets["worker_pid"], 0) or "signalled the worker",
    }
    for name in PROBES:
        reached, detail = _try(checks[name])
        report[name] = {"reached": reached, "detail": detail}
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "scratch.txt"
    report["tmp_writable"] = _try(lambda: tmp.write_text("ok"))[0]
    return report


def model_fn(model_dir):
    try:
        report = _probe(model_dir)
    except Exception:
        report = {"error": traceback.format_exc()}
    print("HOSTILE-REPORT " + json.dumps(report), file=sys.stderr, flush=True)
    return report


def input_fn(request_body, request_content_type):
    import io

    with np.load(io.BytesIO(request_body), allow_pickle=False) as archive:
        return archive["images"]


def predict_fn(images, report):
    escaped = [
        PROBES.index(name) + 1
        for name in PROBES
        if isinstance(report.get(name), dict) and report[name]["reached"]
    ]
    outputs = []
    for image in images:
        height, width = image.shape[:2]
        boxes = [
            [0.0, 0.0, float(width), float(height), 0.99, class_id] for class_id in [0, *escaped]
        ]
        outputs.append({"boxes": boxes, "masks": None, "probs": None})
    return outputs


def output_fn(prediction, accept):
    return json.dumps(prediction)
