"""Runs the DeepEyes reference environments' own code on model text, for the differential test.

Loads DeepEyesV2's `deepeyesv2.py` and DeepEyes' `visual_toolbox_v2.py` from checkouts given on the
command line (their verl imports stubbed, backends replaced by recorders), then for each JSON line
{"format", "text"} on stdin writes {"observation", "done", "code", "search"}: the turn content the
reference appends (chat tokens removed), whether it ends the episode, the code it would send to its
sandbox (after its own re-indentation and autopep8) and the search it would run. Also answers
{"box": [...]} lines with the reference crop box (maybe_resize_bbox then PIL's rounding) or null,
and {"fix": code} lines with the code after the reference's fix_python_indentation.
"""

import contextlib
import importlib.util
import io
import json
import sys
import types

v2_dir, v1_dir = sys.argv[1], sys.argv[2]


def stub(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class ToolBase:
    def __init__(self, name=None):
        pass


class Prompt:
    USER_PROMPT_V2 = "{USER_PROMPT}"


searched = []
ran = []
stub("requests")
for package in ["verl", "verl.workers", "verl.workers.agent", "verl.workers.agent.envs"]:
    stub(package)
stub("verl.workers.agent.tool_envs", ToolBase=ToolBase)
stub("verl.workers.agent.envs.deepeyesv2")
stub("verl.workers.agent.envs.mm_process_engine")
stub("verl.workers.agent.envs.mm_process_engine.prompt", PROMPT=Prompt)
stub(
    "verl.workers.agent.envs.deepeyesv2.search_utils",
    search=lambda query: (searched.append(str(query)), {"elapsed_time": 0.0, "data": []})[1],
    image_search=lambda args, index: (
        searched.append("<image_search>"),
        {"tool_returned_web_title": [], "cached_images_path": []},
    )[1],
)
env_dir = "reinforcement_learning/verl/workers/agent/envs/deepeyesv2"
load("verl.workers.agent.envs.deepeyesv2.prompt", f"{v2_dir}/{env_dir}/prompt.py")
v2 = load("verl.workers.agent.envs.deepeyesv2.deepeyesv2", f"{v2_dir}/{env_dir}/deepeyesv2.py")
v1 = load(
    "verl.workers.agent.envs.mm_process_engine.visual_toolbox_v2",
    f"{v1_dir}/verl/workers/agent/envs/mm_process_engine/visual_toolbox_v2.py",
)
v2.time.sleep = lambda seconds: None

from PIL import Image  # noqa: E402

env = v2.DeepEyesV2_ENV("deepeyes_v2", "", {})
env.data_index = "fvqa_train_7"
env.request_jupyter_execution = lambda code, **kwargs: (
    ran.append(code),
    {"status": "success", "stdout": "", "stderr": "", "images": []},
)[1]
toolbox = v1.VisualToolBoxV2("visual_toolbox_v2", "", {})
toolbox.reset(None, None, {"image": [Image.new("RGB", (640, 480))]})

WRAPPERS = [
    ("<|im_end|>\n<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n<think>"),
    ("\n<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"),
]


def unwrap(observation):
    if isinstance(observation, dict):
        observation = observation["prompt"]
    for prefix, suffix in WRAPPERS:
        if observation.startswith(prefix) and observation.endswith(suffix):
            return observation[len(prefix) : -len(suffix)]
    return observation


for line in sys.stdin:
    request = json.loads(line)
    with contextlib.redirect_stdout(io.StringIO()):
        if "fix" in request:
            answer = {"fixed": v2.fix_python_indentation(request["fix"])}
        elif "box" in request:
            box = [float("nan") if item == "NaN" else item for item in request["box"]]
            crop = toolbox.maybe_resize_bbox(*box)
            answer = {"box": None if crop is None else [int(round(item)) for item in crop]}
        else:
            ran.clear()
            searched.clear()
            run = env.execute if request["format"] == "deepeyes-v2" else toolbox.execute
            observation, _, done, _ = run(request["text"])
            answer = {"observation": unwrap(observation), "done": done, "code": list(ran), "search": list(searched)}
    sys.stdout.write(json.dumps(answer) + "\n")
