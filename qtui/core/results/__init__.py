"""Stored results, the leaderboard maths, export and log import."""
