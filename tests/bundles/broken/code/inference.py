"""Test bundle whose model_fn fails, as one with a missing weights file does."""

import os


def model_fn(model_dir):
    raise FileNotFoundError(f"weights.pt is missing from {os.path.basename(model_dir)}")


def input_fn(request_body, request_content_type):
    return request_body


def predict_fn(input_data, model):
    return []


def output_fn(prediction_output, content_type):
    return prediction_output
