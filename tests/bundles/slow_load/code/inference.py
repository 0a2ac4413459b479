"""Test bundle whose model_fn takes a second."""

import time


def model_fn(model_dir):
    time.sleep(1.0)
    return "model"


def input_fn(request_body, request_content_type):
    return request_body


def predict_fn(input_data, model):
    return [{"embedding": [1.0, 2.0, 3.0]}]


def output_fn(prediction_output, content_type):
    return prediction_output
