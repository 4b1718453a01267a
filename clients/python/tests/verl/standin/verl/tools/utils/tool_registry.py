"""verl/tools/utils/tool_registry.py at b178a3c, native tools only.

verl reads the file with OmegaConf.load and hands each tool `OmegaConf.to_container(config, resolve=True)`; plain
YAML without interpolations gives the same dicts through yaml.safe_load (OmegaConf is not installed here).
"""

import importlib
import sys
from enum import Enum

import yaml

from verl.tools.schemas import OpenAIFunctionToolSchema


class ToolType(Enum):
    NATIVE = "native"
    MCP = "mcp"


def get_tool_class(cls_name):
    module_name, class_name = cls_name.rsplit(".", 1)
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    return getattr(module, class_name)


def initialize_tools_from_config(tools_config_file):
    with open(tools_config_file) as file:
        tools_config = yaml.safe_load(file)
    tool_list = []
    for tool_config in tools_config["tools"]:
        tool_type = ToolType(tool_config["config"]["type"])
        tool_cls = get_tool_class(tool_config["class_name"])
        if tool_type is not ToolType.NATIVE:
            raise NotImplementedError("the stand-in loads native tools only")
        schema = tool_config.get("tool_schema")
        tool_schema = None if schema is None else OpenAIFunctionToolSchema.model_validate(schema)
        tool_list.append(tool_cls(config=tool_config["config"], tool_schema=tool_schema))
    return tool_list
