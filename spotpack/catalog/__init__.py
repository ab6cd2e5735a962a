"""The instance catalog: specs, GPUs, prices and spot interruption risk per instance type.

Values and pure logic (:mod:`.model`, :mod:`.schema`, :mod:`.vgpu`,
:mod:`.nodeoverlay`, :mod:`.refresh`, :mod:`.advisor`); file I/O only in
:mod:`.load`; the cloud only through :mod:`spotpack.cloud.aws_catalog`.
"""

from spotpack.catalog.load import load_catalog
from spotpack.catalog.model import BUCKET_LABELS, Catalog, GPUSpec, InstanceType, Source, SpotOffer

__all__ = [
    "BUCKET_LABELS",
    "Catalog",
    "GPUSpec",
    "InstanceType",
    "Source",
    "SpotOffer",
    "load_catalog",
]
