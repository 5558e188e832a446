"""YAML manifest → typed, validated specs, with file:line:column:field errors.

Must not import torch (the publish half reads manifests for xfail entries). The YAML is
*composed* (not loaded) so every value keeps the line and column it was written at
(``yaml_reader``); ``parse`` turns it into the specs of ``specs``, and ``references`` checks the
code the manifest names before torch starts, without running it. The format is described for
editors and humans in ``config/manifest.schema.json``; a unit test keeps both in sync.
"""

from exportwatch.manifest.parse import (
    load_manifest,
)
from exportwatch.manifest.references import (
    check_references,
    format_parameters,
)
from exportwatch.manifest.specs import (
    DEFAULT_INPUT_SET,
    DEFAULTS_KEYS,
    DICT_KEY,
    DIM_KEYS,
    DTYPES,
    EXECUTORCH_BACKENDS,
    EXECUTORCH_KEYS,
    EXPECT_KEYS,
    INPUTS_KEYS,
    KNOWN_DEVICES,
    KNOWN_TARGETS,
    MANIFEST_VERSION,
    MODEL_KEYS,
    TENSOR_KEYS,
    TOP_KEYS,
    TUPLE_KEY,
    ConfigError,
    DimSpec,
    InputsSpec,
    InputValue,
    Location,
    Manifest,
    ModelSpec,
    TensorSpec,
    did_you_mean,
    dtype_kind,
    value_range,
)
from exportwatch.manifest.yaml_reader import (
    MAX_EXPANDED_VALUES,
    MAX_NESTING,
    FieldPath,
    ManifestYamlLoader,
    format_path,
)

__all__ = [
    "DEFAULTS_KEYS",
    "DEFAULT_INPUT_SET",
    "DICT_KEY",
    "DIM_KEYS",
    "DTYPES",
    "EXECUTORCH_BACKENDS",
    "EXECUTORCH_KEYS",
    "EXPECT_KEYS",
    "INPUTS_KEYS",
    "KNOWN_DEVICES",
    "KNOWN_TARGETS",
    "MANIFEST_VERSION",
    "MAX_EXPANDED_VALUES",
    "MAX_NESTING",
    "MODEL_KEYS",
    "TENSOR_KEYS",
    "TOP_KEYS",
    "TUPLE_KEY",
    "ConfigError",
    "DimSpec",
    "FieldPath",
    "InputValue",
    "InputsSpec",
    "Location",
    "Manifest",
    "ManifestYamlLoader",
    "ModelSpec",
    "TensorSpec",
    "check_references",
    "did_you_mean",
    "dtype_kind",
    "format_parameters",
    "format_path",
    "load_manifest",
    "value_range",
]
