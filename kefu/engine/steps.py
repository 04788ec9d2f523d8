"""The human-step kit: how any Kefu process waits for a person, the same way everywhere.

A process (the complaint case today; key-account onboarding, service plans, surveys entered by staff next)
declares its human steps as ``Step`` values — a name, a typed ``RunInput`` form, the milestones completing
it meets, the status it moves to, the roles that may answer — and asks for them with ``HumanSteps.ask``.
The kit gives every process the same guarantees:

- **Each ask has a stable key.** The suspend key is ``<step key>-<round>``; the kit numbers the rounds
  itself: the n-th time a run asks for a step is round n-1. A resumed run re-runs from the top and asks
  again in the same order, so every ask gets the key it had before and finds its earlier answer (``Answers``)
  instead of waiting again.
- **An answer is recorded once**: "waiting" before the run suspends, the completion with the answer as the
  audit event after; both keyed, so replaying a step writes nothing twice.
- **A refused answer is recorded and asked again, never a failed run.** The process's own rules for every
  answer (``StepRecord.admit``: e.g. the staff it names exist) and a ``check`` passed to ``ask`` may raise
  ``StepRefused`` with the reason; the kit records the refusal (the person sees why), records nothing else,
  and asks again in the next round, with the next key. A refusal is final: a replay skips a refused answer
  without judging it again, and does not judge again an answer already accepted (staff deactivated since
  cannot un-complete a step).
- **The form shows the case.** The markdown summary the process gives is shown above the form; the form itself
  is the step's ``StepForm`` (``kefu.engine.forms``: zh-CN titles, choices in the policy's words).

What is particular to one process (its records, its audit events, its summary) comes in through a small
``StepRecord`` object; the kit imports no process's own work.

**Keys are forever.** A step's key must never change while runs that ask it are in flight: a resumed run
finds the answers it already has by key, so a changed key makes it wait again for an answer it has (and
record the step twice). When a step is renamed, keep its old key string as the step's ``key``
(``Step("first_call", ..., key="first-contact")``). Never reuse a key for a different input model: an
earlier answer would be read as the new model's. A new step, or a new form that is not compatible with the
old one, gets a new key.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, overload

from prefect.input import RunInput
from pydantic import create_model
from pydantic.fields import FieldInfo

from kefu.engine.waiting import Answers, suspend_until_answered

T = TypeVar("T", bound=RunInput)
R = TypeVar("R")
# Prefect's pause keys: lowercase letters, digits and dashes.
KEY_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class StepRefused(Exception):
    """An answer a step cannot accept (raised by its check, with the reason the person is shown)."""


@dataclass(frozen=True)
class Step(Generic[T]):
    """A human step: its form, what completing it means, and its stable key.

    ``meets``: milestone ids completing it meets; ``status``: the status it moves its case to; ``roles``:
    role names that may answer it (empty: anyone; enforced by whoever accepts answers); ``key``: the
    stable stem of its suspend keys, by default the name with dashes (see the module's rule on keys); ``title``:
    what the people answering it call it (zh-CN, shown in its summary), by default its input form's title.
    """

    name: str
    input: type[T]
    meets: tuple[str, ...] = ()
    status: str | None = None
    roles: tuple[str, ...] = ()
    key: str = ""
    title: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.name.replace("_", "-"))
        if not self.title:
            object.__setattr__(self, "title", str(self.input.model_config.get("title") or self.name))
        if not KEY_PATTERN.fullmatch(self.key):
            raise ValueError(f"step '{self.name}': key '{self.key}' must be lowercase letters, digits and dashes")

    def round_key(self, round_no: int) -> str:
        return f"{self.key}-{round_no}"


def steps_by_name(*steps: Step[Any]) -> dict[str, Step[Any]]:
    """A process's steps by name; refuses two steps with one name or one key."""
    by_name: dict[str, Step[Any]] = {}
    keys: set[str] = set()
    for step in steps:
        if step.name in by_name or step.key in keys:
            raise ValueError(f"step '{step.name}': its name or key '{step.key}' is used by another step")
        by_name[step.name] = step
        keys.add(step.key)
    return by_name


def prefilled(model: type[T], values: dict[str, Any]) -> type[T]:
    """``model`` with ``values`` as its fields' defaults (the form starts with them), each field keeping its title,
    description and annotations (Prefect's ``with_initial_data`` keeps only the bare type). Answers are still read
    with ``model`` itself: a default is only what the form shows first (validated like an answer, should one be
    read with the form)."""
    if not values:
        return model
    fields: dict[str, Any] = {}
    for name, value in values.items():
        info = model.model_fields[name]
        fields[name] = (info.annotation, FieldInfo.merge_field_infos(info, default=value, validate_default=True))
    prefilled_model: type[T] = create_model(model.__name__, __base__=model, **fields)
    return prefilled_model


class StepRecord(Protocol):
    """The parts of asking that belong to one process (its database records); each must be idempotent by key."""

    def summary(self, step: Step[Any]) -> str:
        """Markdown shown above the form: what the person needs to answer (personal data masked: Prefect shows it)."""
        ...

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        """Values the form starts with for this case, as the form shows them (e.g. the rules' proposal); {}: none."""
        ...

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        """Raise ``StepRefused`` for a new answer the process refuses whatever the step (e.g. unknown staff)."""
        ...

    def outcome(self, step: Step[Any], key: str) -> str | None:
        """What was recorded for the answer under ``key``: ``"completed"``, ``"refused"`` or ``None`` (nothing)."""
        ...

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        """Record that the run waits on ``step`` under ``key`` (before it suspends)."""
        ...

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        """Record the answer as the step's audit event; meet ``step.meets``, move to ``step.status``."""
        ...

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        """Record that ``answer`` under ``key`` was refused, and why (the step is asked again)."""
        ...


class HumanSteps:
    """The human steps of one flow run. Build it once at the top of the flow: it reads the answers the run
    already has in one call, and numbers each step's rounds in the order the flow asks."""

    def __init__(self, record: StepRecord, answers: Answers | None = None) -> None:
        self.record = record
        self.answers = answers if answers is not None else Answers()
        self._rounds: Counter[str] = Counter()
        self._inputs: dict[str, type[RunInput]] = {}

    @overload
    def ask(self, step: Step[T]) -> T: ...

    @overload
    def ask(self, step: Step[T], check: Callable[[T], R]) -> R: ...

    def ask(self, step: Step[T], check: Callable[[T], Any] | None = None) -> Any:
        """Wait until a person completes ``step``; with ``check``, until ``check`` accepts the answer.

        Returns the answer, or what ``check`` returns. A ``StepRefused`` from ``record.admit`` or ``check`` is
        recorded and the step is asked again in its next round; any other exception is the flow's own failure.
        The answer is recorded as completed only once it is accepted.
        """
        while True:
            key = self._next_key(step)
            answer = self._answer(step, key)
            outcome = self.record.outcome(step, key)
            if outcome == "refused":
                continue  # refused when it came: a replay keeps it refused, whatever changed since
            data = answer.model_dump(mode="json", exclude={"metadata"})
            try:
                if outcome is None:
                    self.record.admit(step, data)
                result = answer if check is None else check(answer)
            except StepRefused as refused:
                self.record.refused(step, key, str(refused), data)
                continue
            if outcome is None:
                self.record.completed(step, key, data)
            return result

    def _next_key(self, step: Step[Any]) -> str:
        known = self._inputs.setdefault(step.key, step.input)
        if known is not step.input:
            raise ValueError(f"step key '{step.key}' is used for two input models: {known.__name__}, {step.input}")
        round_no = self._rounds[step.key]
        self._rounds[step.key] += 1
        return step.round_key(round_no)

    def _answer(self, step: Step[T], key: str) -> T:
        given = self.answers.given(key)
        if given is not None:
            answer = step.input(**given)
        else:
            initial = prefilled(step.input, self.record.initial(step))
            form = initial.with_initial_data(description=self.record.summary(step))
            self.record.waiting(step, key, str(self.answers.flow_run_id))  # announced just before the suspend
            answer = suspend_until_answered(form, key)
        return answer
