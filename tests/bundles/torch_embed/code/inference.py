"""Test bundle: a small random-weight CNN; embeddings come back as torch tensors."""

import io

import numpy as np
import torch
from torch import nn


def model_fn(model_dir):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return model.eval()


def input_fn(request_body, request_content_type):
    with np.load(io.BytesIO(request_body), allow_pickle=False) as archive:
        images = archive["images"]
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def predict_fn(input_data, model):
    with torch.no_grad():
        return model(input_data)


def output_fn(prediction_output, content_type):
    return [{"embedding": row} for row in prediction_output]  # tensors: the host converts them
