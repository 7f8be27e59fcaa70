"""Brian2 preferences the engine relies on, applied once per process."""

from __future__ import annotations

import contextlib
import logging
import os

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
    _drop_brian_temp_files()
    _restore_excepthook()
    _DONE = True


def _restore_excepthook() -> None:
    """Brian2 installs an exception hook at import that answers every uncaught exception, the
    user's own included, with a banner asking to report a bug in Brian2: the interpreter's own
    hook comes back (an error inside Brian2 still shows its traceback)."""
    import sys

    from brian2 import prefs
    from brian2.utils.logger import brian_excepthook
    prefs["logging.display_brian_error_message"] = False
    if sys.excepthook is brian_excepthook:
        sys.excepthook = sys.__excepthook__


def _drop_brian_temp_files() -> None:
    """Close and delete the debug log and the copy of the main script that Brian2 writes to the
    temporary folder when it is imported. It deletes them only at a clean exit, so every rank that
    a scheduler kills (time limit, ``scancel``) would leave both behind on the node; dtb logs
    through its own logger, and a failing run says what failed on stderr. (Brian2's
    ``brian_stdout_*``/``brian_stderr_*`` files stay: it reads them back to report a compiler
    error, so they cannot go before the process ends.)"""
    from brian2 import BrianLogger, prefs

    prefs["logging.file_log"] = False
    prefs["logging.save_script"] = False
    if BrianLogger.file_handler is not None:
        logging.getLogger("brian2").removeHandler(BrianLogger.file_handler)
        BrianLogger.file_handler.close()
        BrianLogger.file_handler = None
    for path in (BrianLogger.tmp_log, BrianLogger.tmp_script):
        if path:
            with contextlib.suppress(OSError):
                os.remove(path)
    BrianLogger.tmp_log = None
    BrianLogger.tmp_script = None
