"""The one service every front end calls: plan, queue, follow, board."""
