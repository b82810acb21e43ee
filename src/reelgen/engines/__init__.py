"""Engines turn GenerationParams into frames. `registry` is torch-free; family modules import torch lazily."""
