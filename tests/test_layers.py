"""The architecture, pinned: the packages' layers, bottom up, and two rules read from the source
with `ast` (every import, also those inside functions): a module imports only from its own
layer or the ones below, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("motion_prior", "sim_envs", "ros_nodes")

# The one list of the layers, bottom up. A module belongs to the longest entry its name starts
# with; a package's own __init__ (its facade, e.g. `from motion_prior import MotionPrior`) sits
# above its layers.
LAYERS = (
    "motion_prior.foundation",  # errors, configs, checkpoints, camera, pokes, metrics, descriptions, drawing
    "motion_prior.data",  # clips, shards, datasets, batch views, tracker import
    "motion_prior.networks",  # layers, frame encoder, poke conditioning, text encoder, VAE, flow
    "motion_prior.inference",  # model directory, backends, samplers, futures, MotionPrior, ONNX, packing
    "motion_prior.training",  # the loop, poke sampling, the stage recipes
    "motion_prior.evaluation",  # eval vae, eval flow, bench
    "motion_prior.cli",
    "motion_prior",
    "sim_envs.simulation",  # scenes, scripts, rendering, the simulator
    "sim_envs.generation",  # the clip generator and the job that writes clips
    "sim_envs.tasks",  # Gymnasium envs, the wrapper, poke functions
    "sim_envs.planning",  # planners, their evaluation and the on-policy clips they collect
    "sim_envs.apps",  # the CLI verbs, demo, pipeline, bench
    "sim_envs",
    "ros_nodes",
)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of the packages it imports (`from a import b` counts as a.b when
    that is a module)."""
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def layer_of(module: str) -> int:
    matches = [i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches, key=lambda i: len(LAYERS[i]))


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b} ({LAYERS[layer_of(a)]} imports {LAYERS[layer_of(b)]})"
                  for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_sits_in_a_layer_and_imports_only_its_own_layer_or_lower():
    graph = import_graph(module_files())
    assert upward_imports(graph) == []


def test_no_import_cycles():
    assert cycles(import_graph(module_files())) == []


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    for name, text in {"motion_prior/foundation/camera.py": "from motion_prior.inference import prior\n",
                       "motion_prior/inference/prior.py": "import motion_prior.foundation.camera\n",
                       "sim_envs/simulation/simulator.py": "from sim_envs.tasks.envs import X\n",
                       "sim_envs/tasks/envs.py": "", "ros_nodes/node.py": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(module_files(tmp_path))
    assert upward_imports(graph) == [
        "motion_prior.foundation.camera -> motion_prior.inference.prior "
        "(motion_prior.foundation imports motion_prior.inference)",
        "sim_envs.simulation.simulator -> sim_envs.tasks.envs (sim_envs.simulation imports sim_envs.tasks)"]
    assert cycles(graph) == [["motion_prior.foundation.camera", "motion_prior.inference.prior"]]
