"""verl/tools/schemas.py at b178a3c: the pydantic 2 models a tool schema and a tool response must pass."""

from typing import Any

from pydantic import BaseModel, Field, model_validator


class OpenAIFunctionPropertySchema(BaseModel):
    """One parameter. Only these three keys survive: items, minItems, maxItems, ... are dropped (extra=ignore)."""

    type: str
    description: str | None = None
    enum: list[str] | None = None


class OpenAIFunctionParametersSchema(BaseModel):
    type: str
    properties: dict[str, OpenAIFunctionPropertySchema]
    required: list[str]


class OpenAIFunctionSchema(BaseModel):
    name: str
    description: str
    parameters: OpenAIFunctionParametersSchema = Field(
        default_factory=lambda: OpenAIFunctionParametersSchema(type="object", properties={}, required=[])
    )
    strict: bool = False


class OpenAIFunctionToolSchema(BaseModel):
    type: str
    function: OpenAIFunctionSchema


class ToolResponse(BaseModel):
    """What a tool's create/execute returns. An `image` or `video` given at all must be a list: None is refused."""

    text: str | None = None
    image: list[Any] | None = None
    video: list[Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def initialize_request(cls, values):
        # verl checks the presence of the key, not its value: ToolResponse(image=None) fails.
        if "image" in values and not isinstance(values["image"], list):
            raise ValueError(f"Image must be a list, but got {type(values['image'])}. Please check the tool.execute().")
        if "video" in values and not isinstance(values["video"], list):
            raise ValueError(f"Video must be a list, but got {type(values['video'])}. Please check the tool.execute().")
        return values

    def is_empty(self) -> bool:
        return not self.text and not self.image and not self.video

    def is_text_only(self) -> bool:
        return self.text and not self.image and not self.video
