"""Brian2 preferences the engine relies on, applied once per process."""

from __future__ import annotations

import logging

_DONE = False

#: IEEE-exact compilation: no -ffast-math and no fused multiply-add contraction, so a neuron's
#: update gives the same bits whether it falls in a vectorised loop body or in its scalar
#: remainder (which depends on how many neurons the rank holds).
COMPILE_ARGS = ["-w", "-O3", "-fno-fast-math", "-ffp-contract=off", "-std=c++11"]


def configure_brian() -> None:
    global _DONE
    if _DONE:
        return
    from brian2 import BrianLogger, prefs

    prefs.codegen.target = "cython"
    prefs.codegen.cpp.extra_compile_args_gcc = list(COMPILE_ARGS)
    prefs.codegen.runtime.cython.multiprocess_safe = True
    BrianLogger.suppress_hierarchy("brian2.codegen")
    BrianLogger.suppress_name("resolution_conflict")
    BrianLogger.log_level_warn()
    logging.getLogger("brian2").setLevel(logging.WARNING)
    _DONE = True
