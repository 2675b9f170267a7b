"""The official Sinch SDK (``sinch`` 2.x) as the judge of SVAML v2 answers and v2 event bodies, for the v2 tests.

A model must load with no unknown field left over (``model_extra``), no union member falling back
to ``SinchRawResponse``, and (for answers) serialise back to the very same JSON.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from sinch.core.models.sinch_raw_response import SinchRawResponse
from sinch.domains.voice.api.v2.sinch_events import SinchEvents
from sinch.domains.voice.models.v2.sinch_events import VoiceSinchEventResponse

__all__ = ["assert_sdk_accepts_answer", "assert_sdk_accepts_not_recorded", "assert_sdk_understood",
           "sdk_command_names"]


def assert_sdk_understood(model: Any, path: str = "$") -> None:
    """Every value of an SDK model was understood: no unknown field kept aside, no raw fallback for a union."""
    assert not isinstance(model, SinchRawResponse), f"{path}: the SDK did not recognise this object"
    if isinstance(model, BaseModel):
        assert not model.model_extra, f"{path}: fields unknown to the SDK: {sorted(model.model_extra)}"
        for name in type(model).model_fields:
            assert_sdk_understood(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, (list, tuple)):
        for i, item in enumerate(model):
            assert_sdk_understood(item, f"{path}[{i}]")
    elif isinstance(model, dict):
        for key, item in model.items():
            assert_sdk_understood(item, f"{path}.{key}")


def sdk_command_names(value: Any) -> Any:
    """``sent`` with the wire command ``webhook`` renamed to the SDK's ``customEvent``.

    sinch 2.3's response union picks a command by its ``command`` before the model's own
    validator maps ``webhook`` to ``customEvent``, so it refuses the wire name it writes itself
    (``serialize_response`` emits ``"command": "webhook"``).  Loading with the SDK's name and
    comparing what it writes with callgate's bytes checks the wire name all the same.
    """
    if isinstance(value, dict):
        renamed = {key: sdk_command_names(item) for key, item in value.items()}
        if renamed.get("command") == "webhook":
            renamed["command"] = "customEvent"
        return renamed
    if isinstance(value, list):
        return [sdk_command_names(item) for item in value]
    return value


def assert_sdk_accepts_answer(body: bytes) -> None:
    """The answer loads in VoiceSinchEventResponse and the SDK serialises it back to the same JSON."""
    sent = json.loads(body)
    model = VoiceSinchEventResponse.model_validate(sdk_command_names(sent))
    assert_sdk_understood(model)
    assert SinchEvents().serialize_response(model) == sent


def assert_sdk_accepts_not_recorded(body: bytes) -> None:
    """The 424 not-recorded answer still loads in VoiceSinchEventResponse: ``commands`` ``[]`` understood, its
    ``error`` and ``message`` kept aside as extra fields (the model allows them)."""
    sent = json.loads(body)
    model = VoiceSinchEventResponse.model_validate(sent)
    assert model.commands == [] and set(model.model_extra or {}) == {"error", "message"}, sent
    assert SinchEvents().serialize_response(model) == sent
