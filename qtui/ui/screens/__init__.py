"""qtui's modal screens and the main screen."""
