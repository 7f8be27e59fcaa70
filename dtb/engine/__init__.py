"""The kernel: builds a rank's share of the network in Brian2 and runs it, exchanging spikes over MPI."""

from dtb.engine.kernel import Simulation

__all__ = ["Simulation"]
