import shutil

import mrcfile
import numpy as np
import pytest
import torch

from cryophase.errors import CryophaseError
from cryophase.specimens import AtomicModel, DensityMap, Specimen, load_specimens
from cryophase.specimens.synthetic import SyntheticProteinConfig

SMALL = SyntheticProteinConfig(min_mass_kda=10.0, max_mass_kda=15.0)


def test_synthetic_pool():
    specimens = load_specimens(["synthetic"], torch.Generator().manual_seed(0), synthetic_pool_size=3,
                               synthetic_config=SMALL)
    assert len(specimens) == 3
    assert all(isinstance(s, AtomicModel) and isinstance(s, Specimen) for s in specimens)
    assert len({s.num_atoms for s in specimens}) > 1


def test_files_and_folders(tmp_path, structures_dir):
    shutil.copy(structures_dir / "1aki.pdb", tmp_path / "1aki.pdb")
    shutil.copy(structures_dir / "3o5r.pdb", tmp_path / "3o5r.pdb")
    with mrcfile.new(tmp_path / "blob.mrc") as mrc:
        data = np.zeros((16, 16, 16), dtype=np.float32)
        data[6:10, 6:10, 6:10] = 1.0
        mrc.set_data(data)
        mrc.voxel_size = 2.0
    (tmp_path / "notes.txt").write_text("ignored")
    specimens = load_specimens([str(tmp_path)], torch.Generator().manual_seed(0))
    assert [type(s) for s in specimens] == [AtomicModel, AtomicModel, DensityMap]  # sorted: 1aki, 3o5r, blob
    assert specimens[0].num_atoms == 1001
    single = load_specimens([str(tmp_path / "1aki.pdb"), "synthetic"], torch.Generator().manual_seed(0),
                            synthetic_pool_size=1, synthetic_config=SMALL)
    assert len(single) == 2 and single[0].name == "1aki"


def test_errors(tmp_path):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(FileNotFoundError, match="nothing.pdb"):
        load_specimens([str(tmp_path / "nothing.pdb")], g)
    odd = tmp_path / "model.xyz"
    odd.write_text("1\n")
    with pytest.raises(CryophaseError, match="unknown specimen file type"):
        load_specimens([str(odd)], g)
    with pytest.raises(CryophaseError, match="holds no structure"):
        load_specimens([str(tmp_path / ".")], g)
    with pytest.raises(CryophaseError, match="no specimen source"):
        load_specimens([], g)
