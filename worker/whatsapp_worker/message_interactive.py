"""The `interactive` type object, one model per subtype (`button`, `list`, `cta_url`,
`product`, `product_list`, `catalog_message`, `flow`, `location_request_message`,
`address_message`, `voice_call`, `call_permission_request`, `carousel`), picked by its `type`
through `INTERACTIVE_MODELS`.

Flow parameters, catalog/address/voice-call parameters and carousel cards are objects Meta
keeps growing: only their required keys are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, HttpUrl, model_validator

from whatsapp_worker.message_base import ClosedObject, OpenObject, require_unique
from whatsapp_worker.message_content import Media, NamedMedia


class Body(ClosedObject):
    text: str = Field(min_length=1, max_length=1024)


class Footer(ClosedObject):
    text: str = Field(min_length=1, max_length=60)


class TextHeader(ClosedObject):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=60)


class Header(ClosedObject):
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


class _Interactive(ClosedObject):
    body: Body
    footer: Footer | None = None


class ReplyButtonText(ClosedObject):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=20)


class ReplyButton(ClosedObject):
    type: Literal["reply"]
    reply: ReplyButtonText


class ButtonAction(ClosedObject):
    buttons: list[ReplyButton] = Field(min_length=1, max_length=3)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        require_unique([b.reply.id for b in self.buttons], "button ids")
        require_unique([b.reply.title for b in self.buttons], "button titles")
        return self


class ButtonInteractive(_Interactive):
    type: Literal["button"]
    header: Header | None = None
    action: ButtonAction


class ListRow(ClosedObject):
    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class ListSection(ClosedObject):
    title: str | None = Field(default=None, min_length=1, max_length=24)
    rows: list[ListRow] = Field(min_length=1)


class ListAction(ClosedObject):
    button: str = Field(min_length=1, max_length=20)
    sections: list[ListSection] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _limits(self) -> Self:
        rows = [row for section in self.sections for row in section.rows]
        if len(rows) > 10:
            raise ValueError("at most 10 rows in total across sections")
        require_unique([row.id for row in rows], "row ids")
        if len(self.sections) > 1 and any(s.title is None for s in self.sections):
            raise ValueError("every section needs a title when there are several")
        return self


class ListInteractive(_Interactive):
    type: Literal["list"]
    header: TextHeader | None = None
    action: ListAction


class CtaUrlParameters(ClosedObject):
    display_text: str = Field(min_length=1, max_length=20)
    url: HttpUrl


class CtaUrlAction(ClosedObject):
    name: Literal["cta_url"]
    parameters: CtaUrlParameters


class CtaUrlInteractive(_Interactive):
    type: Literal["cta_url"]
    header: Header | None = None
    action: CtaUrlAction


class ProductAction(ClosedObject):
    catalog_id: str = Field(min_length=1)
    product_retailer_id: str = Field(min_length=1)


class ProductInteractive(ClosedObject):
    type: Literal["product"]
    body: Body | None = None
    footer: Footer | None = None
    action: ProductAction


class ProductItem(ClosedObject):
    product_retailer_id: str = Field(min_length=1)


class ProductSection(ClosedObject):
    title: str = Field(min_length=1, max_length=24)
    product_items: list[ProductItem] = Field(min_length=1)


class ProductListAction(ClosedObject):
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


class FlowParameters(OpenObject):
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


class FlowAction(ClosedObject):
    name: Literal["flow"]
    parameters: FlowParameters


class FlowInteractive(_Interactive):
    type: Literal["flow"]
    header: Header | None = None
    action: FlowAction


class SendLocationAction(ClosedObject):
    name: Literal["send_location"]


class LocationRequestInteractive(ClosedObject):
    type: Literal["location_request_message"]
    body: Body
    action: SendLocationAction


class NamedAction(ClosedObject):
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


class CarouselAction(ClosedObject):
    cards: list[dict[str, Any]] = Field(min_length=1, max_length=10)


class CarouselInteractive(_Interactive):
    type: Literal["carousel"]
    action: CarouselAction


INTERACTIVE_MODELS: Mapping[str, type[ClosedObject]] = {
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
