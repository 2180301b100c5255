"""The type objects of the plain content messages: `text`, the media (`image`, `video`,
`document`, `audio`, `sticker`), `location`, `contacts` and `reaction`.

Models of Meta's `POST /{phone-number-id}/messages` body (see `message_types`); templates
reuse the media and location objects as parameters.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, HttpUrl, model_validator

from whatsapp_worker.message_base import ClosedObject


class Media(ClosedObject):
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


class TextObject(ClosedObject):
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool | None = None


class LocationObject(ClosedObject):
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)
    name: str | None = None
    address: str | None = None


class ContactName(ClosedObject):
    formatted_name: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    suffix: str | None = None
    prefix: str | None = None


class ContactPhone(ClosedObject):
    phone: str | None = None
    type: str | None = None
    wa_id: str | None = None


class ContactEmail(ClosedObject):
    email: str | None = None
    type: str | None = None


class ContactUrl(ClosedObject):
    url: str | None = None
    type: str | None = None


class ContactAddress(ClosedObject):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(ClosedObject):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class Contact(ClosedObject):
    name: ContactName
    phones: list[ContactPhone] | None = None
    emails: list[ContactEmail] | None = None
    urls: list[ContactUrl] | None = None
    addresses: list[ContactAddress] | None = None
    org: ContactOrg | None = None
    birthday: str | None = Field(default=None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class ReactionObject(ClosedObject):
    message_id: str = Field(min_length=1)
    emoji: str  # "" removes the reaction


# `contacts` is an array of contact cards, not an object
ContactList = Annotated[list[Contact], Field(min_length=1, max_length=257)]
