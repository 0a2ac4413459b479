"""Test bundle that imports a package only its requirements.txt provides."""

import numpy as np
import tabulate


def model_fn(model_dir):
    return tabulate


def input_fn(request_body, request_content_type):
    import io

    with np.load(io.BytesIO(request_body), allow_pickle=False) as archive:
        return archive["images"]


def predict_fn(input_data, model):
    return [
        {"embedding": [float(image.mean()), 1.0], "tabulate": model.__file__}
        for image in input_data
    ]


def output_fn(prediction_output, content_type):
    return prediction_output
