"""The terminal display of a running sweep: a progress bar over the trials of this run, live state counts and
the best value so far, and one line per finished trial (value or pruning epoch, seconds, sampled params)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from visionops.sweep.space import format_value

if TYPE_CHECKING:  # pragma: no cover
    import optuna

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


class SweepProgress:
    """Call the instance as ``progress(study, first, total)`` (the ``progress`` argument of ``run_sweep``)."""

    def __init__(self, metric: str, *, enabled: bool = True) -> None:
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

        self.metric = metric
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.description}"), console=self.console, disable=not enabled,
                                 transient=False)
        self.task = None
        self.reported: set[int] = set()

    def __enter__(self) -> SweepProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, study: optuna.Study, first: int, total: int) -> None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number >= first]
        if self.task is None:
            self.task = self.progress.add_task("", total=total)
        states = {}
        for trial in trials:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
            if trial.state.name in FINISHED and trial.number not in self.reported:
                self.reported.add(trial.number)
                self.console.print(self._line(trial))
        done = sum(states.get(s, 0) for s in FINISHED)
        best = self._best(study)
        text = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
        self.progress.update(self.task, completed=min(done, total), description=f"{text}{best}")

    def _best(self, study: optuna.Study) -> str:
        try:
            best = study.best_trial
        except ValueError:  # no complete trial yet
            return ""
        return f" | best {self.metric} {best.value:.4g} (trial {best.number})"

    def _line(self, trial: optuna.trial.FrozenTrial) -> str:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else float("nan")
        values = " ".join(f"{k.rsplit('.', 1)[-1]}={v:.4g}" if isinstance(v, float) else
                          f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in trial.params.items())
        state = trial.state.name
        if state == "COMPLETE":
            outcome = f"{self.metric} {trial.value:.4g}"
        elif state == "PRUNED":
            outcome = f"pruned at epoch {trial.last_step}"
        else:
            outcome = "failed (diverged or worker lost)"
        return f"trial {trial.number:3d} {state:8s} {outcome:28s} {seconds:7.1f} s  {values}"
