"""The tuning phase (`qa optimize`): Optuna studies whose trials are executions of batches.

Imports the phases below it (config, plan, store, execution, results). What each module owns:
- `search`: the search file (QA-Board's form and qaflow's) → a `Search`;
- `objective`: a trial's runs' metrics → one number (QA-Board's `batch_objective`);
- `reference`: the execution `objective.target` names, whose matched runs give the targets;
- `storage`: Optuna's RDB storage in the run store's database;
- `trial`: one trial = one execution, labelled `LABEL|iterN`, tuned with `--tuning`;
- `liveness`: running trials whose process died on this host, failed at once;
- `study`: checking a request, then running its trials, several at once, on shared workers;
- `request`: what `qa optimize` was asked, as JSON for a background driver;
- `background`, `detached`: `qa optimize --no-wait`; `summary`: studies for --show and the board.
"""
