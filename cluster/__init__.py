"""Cluster support: SLURM jobs, checkpoint/requeue, partitioning and the scaling model (see the cluster issue)."""
