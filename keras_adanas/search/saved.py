"""A saved search: an `Ensemble` in a `.keras` file, with its metadata.

The metadata (`Ensemble.metadata`) holds the classifier's arguments, the
member records, the iteration history and why the search stopped; `read`
returns them with the ensemble as a `SavedSearch`.
"""

import dataclasses
import os

import keras

from keras_adanas.ensemble import Ensemble
from keras_adanas.project.directory import ENSEMBLE_FILE
from keras_adanas.project.resume import check_same_arguments
from keras_adanas.search.state import IterationRecord, MemberRecord, SearchState

FORMAT = "keras_adanas.AdaNASClassifier/1"
_FIELDS = {"params": dict, "members": list, "history": list}


@dataclasses.dataclass
class SavedSearch:
    """What a saved classifier holds.

    Attributes:
        state: the `SearchState` of its ensemble.
        params: dict, the classifier's arguments as recorded (JSON).
    """

    state: SearchState
    params: dict


def metadata(params, state):
    """The metadata saved with `state`'s ensemble.

    Args:
        params: dict, the classifier's arguments as JSON.
        state: a `SearchState`.

    Returns:
        A JSON-serializable dict.
    """
    return {
        "format": FORMAT,
        "params": params,
        "members": [m.to_json() for m in state.member_records],
        "history": [r.to_json() for r in state.history],
        "stop_reason": state.stop_reason,
    }


def read(path, known_params):
    """Reads a classifier saved by `AdaNASClassifier.save`, or a project
    directory's ensemble.

    Args:
        path: a `.keras` file, or a project directory.
        known_params: the argument names the classifier has.

    Returns:
        A `SavedSearch`.

    Raises:
        FileNotFoundError: nothing saved there.
        ValueError: a SavedModel, an unreadable file, a Keras model that is not
            a keras_adanas classifier, or damaged metadata.

    Example:

    >>> saved = read("runs/c10", AdaNASClassifier().get_params())
    >>> len(saved.state.members)
    3
    """
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"{path!r} is a SavedModel (written by `export`), which serves with "
            "`tf.saved_model.load`: `load` reads a .keras file (`save`) or a "
            "project directory."
        )
    if os.path.isdir(path):
        path = os.path.join(path, ENSEMBLE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No saved classifier at {path!r}.")
    try:
        ensemble = keras.saving.load_model(path)
    except Exception as error:  # Keras raises many types for a bad file.
        raise ValueError(
            f"{path!r} is not a readable .keras file: {type(error).__name__}: {error}"
        ) from None
    saved = getattr(ensemble, "metadata", None)
    if not isinstance(ensemble, Ensemble) or not isinstance(saved, dict):
        raise ValueError(
            f"{path!r} holds a Keras model but not a keras_adanas classifier. "
            f"Received: a {type(ensemble).__name__}"
        )
    damaged = [k for k, kind in _FIELDS.items() if not isinstance(saved.get(k), kind)]
    if damaged:
        raise ValueError(
            f"{path!r} holds an ensemble whose keras_adanas metadata is damaged: "
            f"{', '.join(damaged)} missing or of the wrong type."
        )
    unknown = sorted(set(saved["params"]) - set(known_params))
    if unknown:
        raise ValueError(
            f"{path!r} was saved with arguments this version of AdaNASClassifier "
            f"does not know: {unknown}."
        )
    try:
        state = SearchState.of_ensemble(
            ensemble,
            [MemberRecord.from_json(m) for m in saved["members"]],
            [IterationRecord.from_json(r) for r in saved["history"]],
            saved.get("stop_reason"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path!r} holds an ensemble whose keras_adanas metadata is damaged: "
            f"{type(error).__name__}: {error}"
        ) from None
    return SavedSearch(state, dict(saved["params"]))


def resumable_state(project, params, defaults, known_params, log):
    """The state of the search `project` holds, to resume.

    Refuses a directory that holds a search with other arguments (see
    `keras_adanas.project.resume`). Writes nothing.

    Args:
        project: a `ProjectDirectory`.
        params: dict, this fit's arguments as JSON.
        defaults: dict, the default arguments as JSON.
        known_params: the argument names the classifier has.
        log: called with a line when a search is resumed.

    Returns:
        A `SearchState`: empty when the directory holds no finished iteration.
    """
    record = project.recorded_search()
    saved = read(project.ensemble_path, known_params) if project.has_ensemble() else None
    if record is None and saved is None:
        return SearchState()
    recorded = record["params"] if record else saved.params
    check_same_arguments(project.path, recorded, params, defaults)
    if saved is None:
        return SearchState()
    log(f"Resuming the search in {project.path!r} after iteration {len(saved.state.history)}.")
    return saved.state
