"""The claim -> run -> store -> finish loop, GPU memory policy and model residency."""
