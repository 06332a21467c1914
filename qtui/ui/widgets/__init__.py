"""qtui's widgets."""
