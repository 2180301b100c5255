"""Pydantic models of the type objects of Meta's `POST /{phone-number-id}/messages` body.

One model per message type (`text`, `image`, ... `reaction`) and per interactive subtype.
Objects Meta documents as closed are `extra="forbid"`; a few objects Meta keeps growing
(flow parameters, catalog/address/voice-call parameters, carousel cards, some template
parameter objects) are only checked for their required keys. Every model is strict: a
JSON string is never coerced into a number or a boolean, and an explicit `null` for a
declared field is an error (omit the field instead).

The models only validate: the worker sends the producer's objects unchanged.
`check_type_object` returns problems as `(location, message)` pairs, whose messages never
contain a value from the input (pydantic errors are read with `include_input=False` and
the only custom messages are the ones written here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

MESSAGE_TYPES = (
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
)

_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": "is not allowed",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "float_type": "must be a number",
}


def problems_of(exc: ValidationError, prefix: Loc = ()) -> list[Problem]:
    """pydantic errors as (location, message), without the offending values."""
    found: list[Problem] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        message = _FRIENDLY.get(err["type"], err["msg"]).removeprefix("Value error, ")
        found.append(((*prefix, *err["loc"]), message))
    return found


class _Closed(BaseModel):
    """A Meta object with a known, closed set of keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key in cls.model_fields:
                    raise ValueError(f"`{key}` must not be null (omit it instead)")
        return data

    def present(self, *names: str) -> set[str]:
        return {name for name in names if name in self.model_fields_set}


class _Open(_Closed):
    """A Meta object checked for its required keys only; other keys are passed on."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


def _unique(values: list[str], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be unique")


# --- media, text, location, contacts, reaction -----------------------------------------


class Media(_Closed):
    id: str | None = Field(default=None, min_length=1)
    link: HttpUrl | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if len(self.present("id", "link")) != 1:
            raise ValueError("exactly one of `id` or `link` is required")
        return self


class NamedMedia(Media):
    filename: str | None = Field(default=None, min_length=1)


class CaptionedMedia(Media):
    caption: str | None = Field(default=None, max_length=1024)


class DocumentObject(CaptionedMedia):
    filename: str | None = Field(default=None, min_length=1)


class TextObject(_Closed):
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool | None = None


class LocationObject(_Closed):
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    name: str | None = None
    address: str | None = None


class ContactName(_Closed):
    formatted_name: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    suffix: str | None = None
    prefix: str | None = None


class ContactPhone(_Closed):
    phone: str | None = None
    type: str | None = None
    wa_id: str | None = None


class ContactEmail(_Closed):
    email: str | None = None
    type: str | None = None


class ContactUrl(_Closed):
    url: str | None = None
    type: str | None = None


class ContactAddress(_Closed):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(_Closed):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class Contact(_Closed):
    name: ContactName
    phones: list[ContactPhone] | None = None
    emails: list[ContactEmail] | None = None
    urls: list[ContactUrl] | None = None
    addresses: list[ContactAddress] | None = None
    org: ContactOrg | None = None
    birthday: str | None = Field(default=None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class ReactionObject(_Closed):
    message_id: str = Field(min_length=1)
    emoji: str  # "" removes the reaction


# --- interactive -----------------------------------------------------------------------


class Body(_Closed):
    text: str = Field(min_length=1, max_length=1024)


class Footer(_Closed):
    text: str = Field(min_length=1, max_length=60)


class TextHeader(_Closed):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=60)


class Header(_Closed):
    type: Literal["text", "image", "video", "document"]
    text: str | None = Field(default=None, min_length=1, max_length=60)
    image: Media | None = None
    video: Media | None = None
    document: NamedMedia | None = None

    @model_validator(mode="after")
    def _matches_type(self) -> Self:
        if self.present("text", "image", "video", "document") != {self.type}:
            raise ValueError(f"a `{self.type}` header needs exactly the `{self.type}` key")
        return self


class _Interactive(_Closed):
    body: Body
    footer: Footer | None = None


class ReplyButtonText(_Closed):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=20)


class ReplyButton(_Closed):
    type: Literal["reply"]
    reply: ReplyButtonText


class ButtonAction(_Closed):
    buttons: list[ReplyButton] = Field(min_length=1, max_length=3)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        _unique([b.reply.id for b in self.buttons], "button ids")
        _unique([b.reply.title for b in self.buttons], "button titles")
        return self


class ButtonInteractive(_Interactive):
    type: Literal["button"]
    header: Header | None = None
    action: ButtonAction


class ListRow(_Closed):
    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class ListSection(_Closed):
    title: str | None = Field(default=None, min_length=1, max_length=24)
    rows: list[ListRow] = Field(min_length=1)


class ListAction(_Closed):
    button: str = Field(min_length=1, max_length=20)
    sections: list[ListSection] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _limits(self) -> Self:
        rows = [row for section in self.sections for row in section.rows]
        if len(rows) > 10:
            raise ValueError("at most 10 rows in total across sections")
        _unique([row.id for row in rows], "row ids")
        if len(self.sections) > 1 and any(s.title is None for s in self.sections):
            raise ValueError("every section needs a title when there are several")
        return self


class ListInteractive(_Interactive):
    type: Literal["list"]
    header: TextHeader | None = None
    action: ListAction


class CtaUrlParameters(_Closed):
    display_text: str = Field(min_length=1, max_length=20)
    url: HttpUrl


class CtaUrlAction(_Closed):
    name: Literal["cta_url"]
    parameters: CtaUrlParameters


class CtaUrlInteractive(_Interactive):
    type: Literal["cta_url"]
    header: Header | None = None
    action: CtaUrlAction


class ProductAction(_Closed):
    catalog_id: str = Field(min_length=1)
    product_retailer_id: str = Field(min_length=1)


class ProductInteractive(_Closed):
    type: Literal["product"]
    body: Body | None = None
    footer: Footer | None = None
    action: ProductAction


class ProductItem(_Closed):
    product_retailer_id: str = Field(min_length=1)


class ProductSection(_Closed):
    title: str = Field(min_length=1, max_length=24)
    product_items: list[ProductItem] = Field(min_length=1)


class ProductListAction(_Closed):
    catalog_id: str = Field(min_length=1)
    sections: list[ProductSection] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _limits(self) -> Self:
        if sum(len(section.product_items) for section in self.sections) > 30:
            raise ValueError("at most 30 products in total across sections")
        return self


class ProductListInteractive(_Interactive):
    type: Literal["product_list"]
    header: TextHeader
    action: ProductListAction


class FlowParameters(_Open):
    flow_message_version: str = Field(min_length=1)
    flow_cta: str = Field(min_length=1)
    flow_id: str | None = Field(default=None, min_length=1)
    flow_name: str | None = Field(default=None, min_length=1)
    flow_token: str | None = None
    flow_action: Literal["navigate", "data_exchange"] | None = None
    flow_action_payload: dict[str, Any] | None = None
    mode: Literal["draft", "published"] | None = None

    @model_validator(mode="after")
    def _one_flow(self) -> Self:
        if len(self.present("flow_id", "flow_name")) != 1:
            raise ValueError("exactly one of `flow_id` or `flow_name` is required")
        return self


class FlowAction(_Closed):
    name: Literal["flow"]
    parameters: FlowParameters


class FlowInteractive(_Interactive):
    type: Literal["flow"]
    header: Header | None = None
    action: FlowAction


class SendLocationAction(_Closed):
    name: Literal["send_location"]


class LocationRequestInteractive(_Closed):
    type: Literal["location_request_message"]
    body: Body
    action: SendLocationAction


class NamedAction(_Closed):
    """`{"name": <subtype's action name>, "parameters": {...}}`; parameters not checked."""

    name: str
    parameters: dict[str, Any] | None = None


class _NamedInteractive(_Interactive):
    action_name: ClassVar[str]
    header: Header | None = None
    action: NamedAction

    @model_validator(mode="after")
    def _action_name(self) -> Self:
        if self.action.name != self.action_name:
            raise ValueError(f'`action.name` must be "{self.action_name}"')
        return self


class CatalogInteractive(_NamedInteractive):
    action_name = "catalog_message"
    type: Literal["catalog_message"]


class AddressInteractive(_NamedInteractive):
    action_name = "address_message"
    type: Literal["address_message"]


class VoiceCallInteractive(_NamedInteractive):
    action_name = "voice_call"
    type: Literal["voice_call"]


class CallPermissionInteractive(_NamedInteractive):
    action_name = "call_permission_request"
    type: Literal["call_permission_request"]


class CarouselAction(_Closed):
    cards: list[dict[str, Any]] = Field(min_length=1, max_length=10)


class CarouselInteractive(_Interactive):
    type: Literal["carousel"]
    action: CarouselAction


INTERACTIVE_MODELS: Mapping[str, type[_Closed]] = {
    "button": ButtonInteractive,
    "list": ListInteractive,
    "cta_url": CtaUrlInteractive,
    "product": ProductInteractive,
    "product_list": ProductListInteractive,
    "catalog_message": CatalogInteractive,
    "flow": FlowInteractive,
    "location_request_message": LocationRequestInteractive,
    "address_message": AddressInteractive,
    "voice_call": VoiceCallInteractive,
    "call_permission_request": CallPermissionInteractive,
    "carousel": CarouselInteractive,
}

# --- template --------------------------------------------------------------------------


class TemplateLanguage(_Closed):
    code: str = Field(min_length=2, max_length=15)
    policy: Literal["deterministic"] | None = None


class Currency(_Closed):
    fallback_value: str = Field(min_length=1)
    code: str = Field(pattern=r"^[A-Z]{3}$")
    amount_1000: int


class DateTime(_Open):
    fallback_value: str = Field(min_length=1)


PARAMETER_VALUES = (
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
)


class TemplateParameter(_Closed):
    type: Literal[
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


class TemplateComponent(_Closed):
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


class TemplateCard(_Closed):
    card_index: int = Field(ge=0, le=9)
    components: list[TemplateComponent] = Field(min_length=1)


class TemplateObject(_Closed):
    name: str = Field(min_length=1, max_length=512)
    language: TemplateLanguage
    components: list[TemplateComponent] | None = None


TemplateComponent.model_rebuild()

# --- dispatch --------------------------------------------------------------------------

_Contacts = Annotated[list[Contact], Field(min_length=1, max_length=257)]

TYPE_ADAPTERS: Mapping[str, TypeAdapter[Any]] = {
    "text": TypeAdapter(TextObject),
    "image": TypeAdapter(CaptionedMedia),
    "video": TypeAdapter(CaptionedMedia),
    "document": TypeAdapter(DocumentObject),
    "audio": TypeAdapter(Media),
    "sticker": TypeAdapter(Media),
    "location": TypeAdapter(LocationObject),
    "contacts": TypeAdapter(_Contacts),
    "reaction": TypeAdapter(ReactionObject),
    "template": TypeAdapter(TemplateObject),
}


def check_type_object(kind: str, obj: object) -> list[Problem]:
    """Problems with the object of message type `kind` (one of MESSAGE_TYPES); [] if fine."""
    try:
        if kind == "interactive":
            return _check_interactive(obj)
        TYPE_ADAPTERS[kind].validate_python(obj, strict=True)
    except ValidationError as exc:
        return problems_of(exc)
    return []


def _check_interactive(obj: object) -> list[Problem]:
    if not isinstance(obj, dict):
        return [((), "must be a JSON object")]
    subtype = obj.get("type")
    if subtype is None:
        return [(("type",), "is required")]
    if not isinstance(subtype, str) or subtype not in INTERACTIVE_MODELS:
        return [(("type",), "must be one of " + ", ".join(sorted(INTERACTIVE_MODELS)))]
    INTERACTIVE_MODELS[subtype].model_validate(obj, strict=True)
    return []
