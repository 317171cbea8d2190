"""Config builders for tests that share keyword arguments across device families and algorithms.

``device("soft_bounds", gamma_up=0.3, ...)`` keeps only the keys the family has (so one set of
keywords serves every family in a parametrised test) and checks the rest like a run would;
``data("mnist", ...)`` is the data set's own schema.
"""

from analog_train.config import ALGORITHMS, DATASETS, DEVICE_FAMILIES, make_algo, make_device
from analog_train.config.run import ImageData
from analog_train.config.rules import keys_of


def device(family="soft_bounds", **kw):
    keys = keys_of(DEVICE_FAMILIES[family])
    return make_device(family, **{k: v for k, v in kw.items() if k in keys})


def algo(name, **kw):
    keys = keys_of(ALGORITHMS[name])
    return make_algo(name, **{k: v for k, v in kw.items() if k in keys})


def data(name="mnist", **kw):
    """The data config of ``name`` (an unknown name gets the image schema, for the loaders' own errors)."""
    return DATASETS.schemas.get(name, ImageData)(name=name, **kw)
