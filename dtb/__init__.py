"""dtb: a digital twin brain simulator.

Packages:
    dtb.spec       network description (populations, projections, stimuli, monitors) from TOML
    dtb.models     neuron model equations and documented defaults
    dtb.connect    connection rules, drawn per target neuron (rank independent)
    dtb.partition  which rank owns which global neuron ids
    dtb.engine     the Brian2 kernel: build, exchange spikes over MPI, record
    dtb.cli        the ``dtb`` command line
"""

__version__ = "0.1.0"
