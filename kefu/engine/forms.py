"""How a human step's input model reads as a form in the Prefect UI, and how Kefu writes one.

Prefect 3.8.8 builds the resume form from the JSON schema it stores for the step (``prefect_private.input_schema``)
and its UI (the schema form of ``prefect/server/ui``) shows, per property:

- the ``title`` as the label, with " (Optional)" appended when the property is not required, and the
  ``description`` as markdown under it (a field without a title shows no words at all);
- an ``enum`` as a select whose options are **the values themselves**: there is no ``enumNames`` nor
  ``oneOf``/``const`` titles, so the words people choose from must be the values;
- an ``anyOf`` as a switch between its branches, labelled by their types ("Severity | None"), whose ``null``
  branch reads 'Property is type "None"'; and a ``"default": null`` is put into the answer as ``null``, which
  the server then refuses against a non-null type.

So a Kefu form is a ``StepForm``: an optional field (``X | None = None``) is shown as its one type and may
be left empty (no ``anyOf``, no ``null`` default), and a ``Choice`` shows the words of the policy in the
select while the flow gets the internal code (``Severity.MAJOR``). The code stays what is recorded (case
events, ``kefu recover``) and what ``kefu step submit`` accepts; the words are what the form sends and
what ``form_answer`` gives the Prefect server. A choice accepts both, so an answer recorded before a form
changed is still read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, SerializationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# The serialization context under which a choice is written as its words (what the form sends).
FORM_CONTEXT = {"kefu_form": True}


class Choice:
    """Mark a ``StrEnum`` field (or ``Enum | None``) as a choice among ``words()``: {code: the words people read}.

    ``Annotated[Severity | None, Choice(severity_words)]``: the form's select offers the words, the model
    holds the code, ``model_dump()`` gives the code and ``model_dump(context=FORM_CONTEXT)`` the words.
    ``words`` (and ``description``, markdown under the select) are called when the schema is built and
    ``words`` when an answer is read: the policy of the moment.
    """

    def __init__(self, words: Callable[[], Mapping[Any, str]], description: Callable[[], str] | None = None) -> None:
        self.words = words
        self.description = description

    def _code(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        words = self.words()
        for code, word in words.items():
            if value.strip() in (word, str(code)):
                return code
        choices = "、".join(words.values())
        if all(str(code) == word for code, word in words.items()):  # the words are the codes (the policy's causes)
            raise ValueError(f"「{value}」不是可选项；请选择{choices}")
        codes = ", ".join(str(code) for code in words)
        raise ValueError(f"「{value}」不是可选项；请选择{choices}（或 {codes}）")

    def _dump(self, value: Any, info: SerializationInfo) -> Any:
        if value is None:
            return None
        if isinstance(info.context, dict) and info.context.get("kefu_form"):
            return self.words().get(value, str(value))
        return value.value if isinstance(value, StrEnum) else value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            self._code,
            handler(source),
            serialization=core_schema.plain_serializer_function_ser_schema(self._dump, info_arg=True),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        shown: dict[str, Any] = {"type": "string", "enum": list(self.words().values())}
        if self.description is not None:
            shown["description"] = self.description()
        return shown


def _one_type(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` → X (with the property's own title and description); no ``default: null``."""
    branches = prop.get("anyOf")
    if isinstance(branches, list):
        others = [b for b in branches if b != {"type": "null"}]
        if len(others) == 1 and len(others) < len(branches):
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **others[0]}
    if "default" in prop and prop["default"] is None:
        prop = {k: v for k, v in prop.items() if k != "default"}
    return prop


def _for_the_prefect_form(schema: dict[str, Any], model: type[BaseModel]) -> None:
    properties = schema.get("properties", {})
    for name, prop in list(properties.items()):
        properties[name] = _one_type(prop)


class StepForm(RunInput):
    """A human step's input as the Prefect UI shows it: give every field a zh-CN ``title`` (and a
    ``description`` of what to write), the model a zh-CN ``title``; optional fields are shown as their one type."""

    model_config = ConfigDict(json_schema_extra=_for_the_prefect_form)


def form_answer(answer: BaseModel) -> dict[str, Any]:
    """An answer as the form would send it (choices in words): what the Prefect server checks at a resume."""
    data: dict[str, Any] = answer.model_dump(mode="json", exclude={"metadata"}, context=FORM_CONTEXT)
    return {key: value for key, value in data.items() if value is not None}
