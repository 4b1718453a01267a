"""A stand-in for the parts of verl that a tool touches, written from verl's source (Apache-2.0).

Pinned to volcengine/verl commit b178a3cd56f58b2d502255daba591e92833930a7 (2026-01-29), read module by module:

    verl/tools/schemas.py                            -> tools/schemas.py (same models, fields, defaults, validator)
    verl/tools/base_tool.py                          -> tools/base_tool.py
    verl/tools/utils/tool_registry.py                -> tools/utils/tool_registry.py (native tools)
    verl/experimental/agent_loop/tool_agent_loop.py  -> experimental/agent_loop/tool_agent_loop.py
    verl/experimental/agent_loop/agent_loop.py       -> the per-sample loop instance and output fields used there

It is importable as `verl` only in the tests that put its folder on sys.path (clients/python/tests/verl/run.py),
so toolplane.verl subclasses and returns these classes exactly as it would verl's own. Token ids, the inference
engine and Ray are left out: a scripted model stands in for generation, and the chat template plus processor step
is reduced to what decides image placement (one image slot per {"type": "image"} content item, which must match
the images handed to the processor).
"""

VERL_COMMIT = "b178a3cd56f58b2d502255daba591e92833930a7"
