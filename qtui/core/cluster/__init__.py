"""Running jobs on a Ray cluster (the optional extra `qtui[ray]`).

node.py runs on a node (no Ray import: testable alone); placement.py holds the pure decisions
(addresses, what a task asks for, how many jobs the cluster can take, failures in words);
ray_exec.py is the only module that imports ray, and only the scheduler imports it, only for a
job that names a cluster: a plain `qtui run` never loads Ray.
"""
