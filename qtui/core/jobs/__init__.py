"""The job queue on disk, the detached scheduler, finalizing and following a job."""
