"""qtui: rank quantized GGUF models by KL divergence from their base, live in the terminal."""

__version__ = "0.1.0"
