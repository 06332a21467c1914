"""GGUF files: the header reader, ggml types, model facts, discovery."""
