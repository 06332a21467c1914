"""llama.cpp: finding and building the tools, argv, the stream parser, events, failure texts, base files."""
