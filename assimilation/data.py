"""Measured BOLD in: regions x time from HDF5, .npy, .mat or CSV/TSV, or a 4D NIfTI in any grid of
the atlas's space reduced to region means (fMRIPrep's output with its confounds: see
assimilation.nifti_input); preprocessing (detrend, band-pass, z-score) as documented options.
Every problem is a DtbError naming the file and what was expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dtb.errors import DtbError


def load_bold(path: str | Path, n_regions: int, key: str | None = None, atlas: str | None = None,
              labels: str | None = None, regions: list[str] | None = None) -> np.ndarray:
    """(T, n_regions) float64 from a file; the region axis is the one of length ``n_regions``."""
    path = Path(path)
    if not path.exists():
        raise DtbError(f"{path}: file not found")
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            data = _nifti_region_means(path, atlas, labels, regions)
        elif name.endswith(".npy"):
            data = np.load(path, allow_pickle=False)
        elif name.endswith(".mat"):
            data = _from_mat(path, key)
        elif name.endswith((".h5", ".hdf5")):
            data = _from_hdf5(path, key)
        elif name.endswith((".csv", ".tsv", ".txt")):
            data = _from_text(path)
        else:
            raise DtbError(f"{path}: unknown BOLD format; expected .h5, .npy, .mat, .csv/.tsv or a 4D NIfTI")
    except DtbError:
        raise
    except Exception as e:        # the readers raise many types for unreadable files
        raise DtbError(f"{path}: cannot read BOLD data ({type(e).__name__}: {e})") from None
    data = _as_real_array(data, path)
    if data.ndim != 2:
        raise DtbError(f"{path}: expected a 2-D array (regions x time), got shape {data.shape}")
    if data.shape[1] == n_regions and data.shape[0] != n_regions:
        pass
    elif data.shape[0] == n_regions:
        data = data.T
    else:
        raise DtbError(f"{path}: {data.shape[0]} x {data.shape[1]} array, but the network has {n_regions} regions "
                       f"(one axis must be the regions)")
    bad = ~np.isfinite(data)
    if bad.any():
        t, r = np.argwhere(bad)[0]
        raise DtbError(f"{path}: {int(bad.sum())} NaN/inf values (first at time {t}, region {r})")
    flat = np.flatnonzero(data.std(axis=0) == 0)
    if len(flat):
        raise DtbError(f"{path}: region(s) {', '.join(map(str, flat[:10]))} are constant (zero variance)")
    if len(data) < 10:
        raise DtbError(f"{path}: only {len(data)} time points")
    return data


def _as_real_array(data, path: Path) -> np.ndarray:
    """float64 from what a reader returned; complex, text or object arrays and empty files are
    errors (a complex array would otherwise lose its imaginary part with only a warning)."""
    arr = np.asarray(data)
    if arr.size == 0:
        raise DtbError(f"{path}: empty file: no BOLD values (expected regions x time numbers)")
    if np.iscomplexobj(arr):
        raise DtbError(f"{path}: complex values (dtype {arr.dtype}); expected real BOLD values (regions x time)")
    if arr.dtype.kind not in "biuf":
        raise DtbError(f"{path}: values of type {arr.dtype} ({'text' if arr.dtype.kind in 'SU' else 'objects'}); "
                       f"expected real numbers (regions x time)")
    return arr.astype(np.float64)


def _from_mat(path: Path, key: str | None):
    from scipy.io import loadmat
    m = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    if key is None:
        arrays = [k for k, v in m.items() if isinstance(v, np.ndarray) and v.ndim == 2]
        if len(arrays) != 1:
            raise DtbError(f"{path}: give --key, one of: {', '.join(m)}")
        key = arrays[0]
    if key not in m:
        raise DtbError(f"{path}: no variable {key!r}; found: {', '.join(m)}")
    return m[key]


def _from_hdf5(path: Path, key: str | None):
    import h5py
    with h5py.File(path, "r") as f:
        if key is None:
            found = []
            f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 2 else None)
            if len(found) != 1:
                raise DtbError(f"{path}: give --key, one of the 2-D datasets: {', '.join(found) or 'none'}")
            key = found[0]
        if key not in f:
            raise DtbError(f"{path}: no dataset {key!r}")
        return f[key][()]


def _from_text(path: Path):
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    if not path.read_text().strip():
        raise DtbError(f"{path}: empty file: no BOLD values (expected regions x time numbers)")
    try:
        return np.loadtxt(path, delimiter=delim, ndmin=2)
    except ValueError:
        return np.loadtxt(path, delimiter=delim, ndmin=2, skiprows=1)     # a header row


def _nifti_region_means(path: Path, atlas: str | None, labels: str | None, regions: list[str] | None) -> np.ndarray:
    from assimilation.nifti_input import region_means
    if atlas is None or labels is None or regions is None:
        raise DtbError(f"{path}: a 4D NIfTI needs the atlas (label volume and table) of the network to extract "
                       f"region means")
    return region_means(path, atlas, labels, regions)


def preprocess(data: np.ndarray, tr: float, detrend: bool = True, band_pass: tuple[float, float] | None = None,
               zscore: bool = True, causal: bool = True, fit_rows: int | None = None) -> np.ndarray:
    """Linear detrend, Butterworth band-pass (order 2, Hz; one causal pass, so that each sample
    depends only on earlier ones, or zero-phase forward-backward with ``causal=False``) and
    z-scoring, per region.

    ``fit_rows``: the trend line and the z-score's mean and sd are estimated on the first
    ``fit_rows`` samples only (the training part) and applied to all, so that, with the causal
    filter, no sample depends on a later one beyond the training part: what a forecast scored on
    the rest needs. None: estimated on all samples (for FC, or a model's own BOLD)."""
    from scipy import signal
    out = np.asarray(data, dtype=np.float64)
    n = len(out) if fit_rows is None else int(fit_rows)
    if not 2 <= n <= len(out):
        raise DtbError(f"preprocessing needs at least 2 samples to fit on, got {n} of {len(out)}")
    if detrend:
        t = np.arange(len(out), dtype=np.float64)
        slope, intercept = np.polyfit(t[:n], out[:n], 1)
        out = out - (intercept + t[:, None] * slope)
    if band_pass is not None:
        nyq = 0.5 / tr
        lo, hi = band_pass
        if hi >= nyq:
            raise DtbError(f"band_pass upper edge {hi:g} Hz is at or above the Nyquist frequency {nyq:g} Hz of TR {tr:g} s")
        b, a = signal.butter(2, [lo / nyq, hi / nyq] if lo > 0 else hi / nyq, btype="band" if lo > 0 else "low")
        if causal:        # started in the steady state of the first sample (no step transient)
            zi = signal.lfilter_zi(b, a)[:, None] * out[:1]
            out = signal.lfilter(b, a, out, axis=0, zi=zi)[0]
        else:
            out = signal.filtfilt(b, a, out, axis=0)
    if zscore:
        out = (out - out[:n].mean(axis=0)) / out[:n].std(axis=0)
    return out


def preprocessed(bold: np.ndarray, spec, fit_rows: int | None = None) -> np.ndarray:
    """BOLD (T, R), measured or a model's, through the config's preprocessing (detrend,
    band-pass, z-score; their statistics from the first ``fit_rows`` rows, default all)."""
    s = spec.assimilation
    return preprocess(bold, spec.bold.tr, s.detrend, s.band_pass, s.zscore, s.band_pass_causal, fit_rows)


def preprocessed_members(model: np.ndarray, spec) -> list[np.ndarray]:
    """Each member's BOLD of a free run (T, M, R) through the config's preprocessing."""
    return [preprocessed(model[:, m], spec) for m in range(model.shape[1])]
