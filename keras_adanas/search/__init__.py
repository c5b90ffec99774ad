"""The AdaNAS search.

- `loop`: `Search`, the loop over iterations;
- `iteration`: one iteration's training (`train_candidates`), and with its
  selection (`selection`'s `select`), `run_iteration`;
- `planner`, `calibration`, `schedule`, `sizing`: a search planned to a
  wall-clock limit, each iteration's step timed and its training kept to
  plan, a schedule whose length is set once it is, and the members' size
  when none is named;
- `distiller`: `Distiller`, the training model of an iteration;
- `optimizer`: `GroupedClippingSGD`, clipping each candidate on its own;
- `candidates`, `budget`, `memory`, `callbacks`: the candidates' seeds and
  models, the parameter budget, the out-of-memory retry, the timer;
- `config`, `state`, `saved`: typed configuration, records and state, and
  the saved format.
"""

from keras_adanas.search.budget import (
    check_first_candidate_fits,
    mixture_params,
    parse_budget,
    propose_within_budget,
)
from keras_adanas.search.callbacks import ThroughputTimer
from keras_adanas.search.candidates import build_candidates, candidate_seed
from keras_adanas.search.config import SYNCHRONIZED_BELOW, IterationConfig, SearchConfig
from keras_adanas.search.distiller import (
    TEACHER_KEY,
    Distiller,
    auxiliary_key,
    candidate_key,
    ensemble_key,
)
from keras_adanas.search.iteration import (
    TrainedIteration,
    moving_statistics,
    run_iteration,
    train_candidates,
)
from keras_adanas.search.loop import Search
from keras_adanas.search.memory import (
    MIN_BATCH_SIZE_AFTER_OOM,
    is_out_of_memory,
    retry_out_of_memory,
)
from keras_adanas.search.optimizer import GroupedClippingSGD
from keras_adanas.search.planner import IterationPlan, TimePlanner, parse_time_limit
from keras_adanas.search.schedule import PlannedCosineDecay
from keras_adanas.search.selection import (
    IterationResult,
    ensemble_crossentropy,
    select,
    select_candidate,
)
from keras_adanas.search.sizing import default_architecture
from keras_adanas.search.state import (
    CandidateRecord,
    IterationRecord,
    IterationStatus,
    MemberRecord,
    SearchState,
)

__all__ = [
    "MIN_BATCH_SIZE_AFTER_OOM",
    "SYNCHRONIZED_BELOW",
    "TEACHER_KEY",
    "CandidateRecord",
    "Distiller",
    "GroupedClippingSGD",
    "IterationConfig",
    "IterationPlan",
    "IterationRecord",
    "IterationResult",
    "IterationStatus",
    "MemberRecord",
    "PlannedCosineDecay",
    "Search",
    "SearchConfig",
    "SearchState",
    "ThroughputTimer",
    "TimePlanner",
    "default_architecture",
    "TrainedIteration",
    "auxiliary_key",
    "build_candidates",
    "check_first_candidate_fits",
    "candidate_key",
    "candidate_seed",
    "ensemble_crossentropy",
    "ensemble_key",
    "is_out_of_memory",
    "mixture_params",
    "moving_statistics",
    "parse_budget",
    "parse_time_limit",
    "propose_within_budget",
    "retry_out_of_memory",
    "run_iteration",
    "select",
    "select_candidate",
    "train_candidates",
]
