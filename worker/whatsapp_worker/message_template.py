"""The `template` type object: a template's name, its language and the components whose
parameters fill it (header, body, buttons, carousel cards, limited-time offers).

Some parameter objects (`action`, `limited_time_offer`, `order_status`, `product`,
`tap_target_configuration`, date-times) are ones Meta keeps growing: only their required keys,
if any, are checked.
"""

from __future__ import annotations

from typing import Any, Literal, Self, get_args

from pydantic import Field, field_validator, model_validator

from whatsapp_worker.message_base import ClosedObject, OpenObject
from whatsapp_worker.message_content import LocationObject, Media, NamedMedia


class TemplateLanguage(ClosedObject):
    code: str = Field(min_length=2, max_length=15)
    policy: Literal["deterministic"] | None = None


class Currency(ClosedObject):
    fallback_value: str = Field(min_length=1)
    code: str = Field(pattern=r"^[A-Z]{3}$")
    amount_1000: int


class DateTime(OpenObject):
    fallback_value: str = Field(min_length=1)


ParameterType = Literal[
    "text",
    "currency",
    "date_time",
    "image",
    "document",
    "video",
    "location",
    "payload",
    "action",
    "coupon_code",
    "limited_time_offer",
    "tap_target_configuration",
    "order_status",
    "product",
]
PARAMETER_VALUES: tuple[str, ...] = get_args(ParameterType)


class TemplateParameter(ClosedObject):
    type: ParameterType
    parameter_name: str | None = Field(default=None, min_length=1)
    text: str | None = Field(default=None, min_length=1)
    payload: str | None = Field(default=None, min_length=1)
    coupon_code: str | None = Field(default=None, min_length=1)
    currency: Currency | None = None
    date_time: DateTime | None = None
    image: Media | None = None
    video: Media | None = None
    document: NamedMedia | None = None
    location: LocationObject | None = None
    action: dict[str, Any] | None = None
    limited_time_offer: dict[str, Any] | None = None
    order_status: dict[str, Any] | None = None
    product: dict[str, Any] | None = None
    tap_target_configuration: Any = None

    @model_validator(mode="after")
    def _matches_type(self) -> Self:
        if self.present(*PARAMETER_VALUES) != {self.type}:
            raise ValueError(f"a `{self.type}` parameter needs exactly the `{self.type}` key")
        return self


_DIGITS = frozenset("0123456789")


class TemplateComponent(ClosedObject):
    type: Literal["header", "body", "footer", "button", "carousel", "limited_time_offer"]
    sub_type: str | None = Field(default=None, pattern=r"^[a-z_]{1,40}$")
    index: Any = None
    parameters: list[TemplateParameter] | None = None
    cards: list[TemplateCard] | None = Field(default=None, min_length=1, max_length=10)

    @field_validator("index", mode="before")
    @classmethod
    def _index(cls, value: Any) -> Any:
        ok_int = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9
        if not (ok_int or (isinstance(value, str) and value in _DIGITS)):
            raise ValueError("must be a button position 0..9 (a number or a digit string)")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Self:
        is_button = self.type == "button"
        if is_button and self.present("sub_type", "index") != {"sub_type", "index"}:
            raise ValueError("a `button` component needs `sub_type` and `index`")
        if not is_button and self.present("sub_type", "index"):
            raise ValueError("only a `button` component takes `sub_type` and `index`")
        if (self.type == "carousel") != ("cards" in self.model_fields_set):
            raise ValueError("`cards` is required for, and only allowed in, `carousel`")
        return self


class TemplateCard(ClosedObject):
    card_index: int = Field(ge=0, le=9)
    components: list[TemplateComponent] = Field(min_length=1)


class TemplateObject(ClosedObject):
    name: str = Field(min_length=1, max_length=512)
    language: TemplateLanguage
    components: list[TemplateComponent] | None = None


TemplateComponent.model_rebuild()
