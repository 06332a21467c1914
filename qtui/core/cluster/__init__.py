"""Running jobs on a Ray cluster (the optional extra `qtui[ray]`).

node.py runs on a node (no Ray import: testable alone); placement.py holds the pure decisions
(addresses, what a task asks for, how many jobs the cluster can take, failures in words);
ray_exec.py and ray_survey.py are the only modules that import ray, and only the scheduler (for a
job that names a cluster) and `qtui cluster` import them: a plain `qtui run` never loads Ray.
survey.py is the pure part of reading the cluster's GPUs, watch.py the scheduler's periodic
survey into the data dir, which the app reads.
"""
