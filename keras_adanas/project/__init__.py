"""A search's project directory (`directory`) and when a fit may resume it (`resume`)."""

from keras_adanas.project.directory import (
    ARCHITECTURES_PLOT,
    BACKUP_FOLDER,
    ENSEMBLE_FILE,
    ERRORS_PLOT,
    LOGS_FOLDER,
    MEMBER_FILE,
    PLOT_FILES,
    PLOTS_FOLDER,
    REPORT_FILE,
    SEARCH_FILE,
    ProjectDirectory,
    ProjectInUseError,
    iteration_folder,
)
from keras_adanas.project.resume import (
    MAY_DIFFER,
    RUNTIME_OPTIONS,
    check_same_arguments,
    check_same_data,
    data_fingerprint,
    data_fingerprints,
)

__all__ = [
    "ARCHITECTURES_PLOT",
    "BACKUP_FOLDER",
    "ENSEMBLE_FILE",
    "ERRORS_PLOT",
    "LOGS_FOLDER",
    "MAY_DIFFER",
    "MEMBER_FILE",
    "PLOTS_FOLDER",
    "PLOT_FILES",
    "REPORT_FILE",
    "RUNTIME_OPTIONS",
    "SEARCH_FILE",
    "ProjectDirectory",
    "ProjectInUseError",
    "check_same_arguments",
    "check_same_data",
    "data_fingerprint",
    "data_fingerprints",
    "iteration_folder",
]
