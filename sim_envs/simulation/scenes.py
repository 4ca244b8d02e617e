"""Procedurally randomised tabletop scenes: a textured table, 1-4 rigid objects, optionally an
articulated object (a hinged door or a drawer), a cylindrical pusher and one camera.

World frame: z up, the table surface is the plane z = 0, the workspace is centred on the origin.
A scene is first sampled as plain data (:class:`SceneSpec`, reproducible from a seed), then
turned into MJCF by :func:`build_mjcf`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from motion_prior.foundation.camera import PinholeCamera, look_at

CAMERA_NAME = "main"
PUSHER_BODY = "pusher"
PUSHER_TARGET_BODY = "pusher_target"
# A door's hinge sits this far (m) along its post's local x; its panel is this thick / 2 (m).
DOOR_HINGE_OFFSET = 0.015
DOOR_HALF_THICKNESS = 0.005

# Named colours, so the text description can say "the red box".
PALETTE = {
    "red": (0.85, 0.15, 0.12),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "orange": (0.98, 0.5, 0.05),
    "purple": (0.55, 0.2, 0.75),
    "cyan": (0.1, 0.8, 0.85),
    "pink": (0.95, 0.45, 0.7),
    "white": (0.92, 0.92, 0.92),
    "black": (0.08, 0.08, 0.08),
}

# Collision bits: the table only touches objects, the pusher only touches objects, so the
# pusher may hover just above the table without friction.
TABLE_BITS, PUSHER_BITS, OBJECT_BITS = 1, 2, 3
TABLE_HALF_SIZE = 3.0  # metres: the table plane spans [-3, 3]^2


@dataclass
class SceneConfig:
    """Ranges the scene sampler draws from (metres, degrees, kilograms)."""

    image_size: tuple[int, int] = (128, 128)
    min_objects: int = 1
    max_objects: int = 4
    shapes: tuple[str, ...] = ("box", "cylinder", "sphere")
    articulated_probability: float = 0.3
    articulated_kinds: tuple[str, ...] = ("door", "drawer")
    object_size: tuple[float, float] = (0.02, 0.055)
    density: tuple[float, float] = (200.0, 1500.0)
    friction: tuple[float, float] = (0.3, 1.0)
    workspace: float = 0.22
    pusher_radius: tuple[float, float] = (0.012, 0.022)
    camera_distance: tuple[float, float] = (0.6, 0.85)
    camera_elevation_deg: tuple[float, float] = (35.0, 75.0)
    camera_fovy_deg: tuple[float, float] = (40.0, 50.0)
    camera_target_jitter: float = 0.05


@dataclass
class ObjectSpec:
    """One free rigid object. `size` is MuJoCo's geom size (half-extents / radius, half-height)."""

    name: str
    shape: str
    size: list[float]
    position: list[float]
    yaw: float
    rgb: list[float]
    mass: float
    friction: float


@dataclass
class ArticulatedSpec:
    """A door (panel on a vertical hinge beside a fixed post) or a drawer (sliding out of a
    fixed cabinet). `opening` is the initial hinge angle (rad) or slide distance (m)."""

    name: str
    kind: str
    position: list[float]
    yaw: float
    rgb: list[float]
    width: float
    height: float
    opening: float

    def footprint(self) -> dict | None:
        """A door panel's footprint on the table at this `opening`, in the form scene metadata
        gives free objects (`shape` "box", `size` half-extents (m), `position`, `yaw` (rad)),
        for `motion_prior.data.clips.path_gap`; None for a drawer, whose motion a pusher's
        nearness to it does not decide (its front only slides along one axis)."""
        if self.kind != "door":
            return None
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        hinge = np.asarray(self.position[:2]) + DOOR_HINGE_OFFSET * np.array([c, s])
        panel_yaw = self.yaw + self.opening
        centre = hinge + 0.5 * self.width * np.array([np.cos(panel_yaw), np.sin(panel_yaw)])
        return {"shape": "box", "size": [0.5 * self.width, DOOR_HALF_THICKNESS, 0.5 * self.height],
                "position": [float(centre[0]), float(centre[1]), 0.0], "yaw": float(panel_yaw)}


@dataclass
class SceneSpec:
    objects: list[ObjectSpec]
    articulated: list[ArticulatedSpec]
    pusher_radius: float
    table_rgb: list[list[float]]
    camera_to_world: list[list[float]]
    fovy_deg: float
    image_size: tuple[int, int]
    extras: dict = field(default_factory=dict)

    @property
    def camera(self) -> PinholeCamera:
        return PinholeCamera.from_fovy(self.fovy_deg, self.image_size, np.array(self.camera_to_world))

    def to_json(self) -> dict:
        """The spec as plain data (the clips' `metadata["scene"]`), each articulated object with
        its `footprint` beside its fields (`ArticulatedSpec.footprint`)."""
        data = asdict(self)
        for art, record in zip(self.articulated, data["articulated"]):
            record["footprint"] = art.footprint()
        return data

    def footprints(self) -> list[tuple[np.ndarray, float]]:
        """(centre xy, radius) of a disc covering each object's footprint, for spacing checks."""
        discs = [(np.array(o.position[:2]), _footprint_radius(o.shape, o.size)) for o in self.objects]
        discs += [(np.array(a.position[:2]), 0.5 * a.width + 0.03) for a in self.articulated]
        return discs


def _footprint_radius(shape: str, size: list[float]) -> float:
    return float(np.hypot(size[0], size[1])) if shape == "box" else float(size[0])


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _colour(rng: np.random.Generator, used: set[str]) -> tuple[str, list[float]]:
    names = [n for n in PALETTE if n not in used] or list(PALETTE)
    name = names[int(rng.integers(len(names)))]
    used.add(name)
    rgb = np.clip(np.array(PALETTE[name]) + rng.normal(0, 0.04, 3), 0, 1)
    return name, [round(float(c), 4) for c in rgb]


def sample_scene(rng: np.random.Generator, config: SceneConfig) -> SceneSpec:
    """Draw a random scene. Objects are placed without overlap inside the workspace square."""
    used_colours: set[str] = set()
    placed: list[tuple[np.ndarray, float]] = []

    def place(radius: float) -> np.ndarray | None:
        for _ in range(100):
            xy = rng.uniform(-config.workspace, config.workspace, 2)
            if all(np.linalg.norm(xy - c) > radius + r + 0.02 for c, r in placed):
                placed.append((xy, radius))
                return xy
        return None

    articulated = []
    if rng.random() < config.articulated_probability:
        kind = config.articulated_kinds[int(rng.integers(len(config.articulated_kinds)))]
        width, height = _uniform(rng, (0.08, 0.14)), _uniform(rng, (0.05, 0.09))
        xy = place(0.5 * width + 0.03)
        if xy is not None:
            colour, rgb = _colour(rng, used_colours)
            opening = _uniform(rng, (0.0, 1.2)) if kind == "door" else _uniform(rng, (0.02, 0.07))
            articulated.append(
                ArticulatedSpec(f"{colour} {kind}", kind, [*map(float, xy), 0.0], _uniform(rng, (-np.pi, np.pi)),
                                rgb, width, height, opening)
            )

    objects = []
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        shape = config.shapes[int(rng.integers(len(config.shapes)))]
        a, b, c = (_uniform(rng, config.object_size) for _ in range(3))
        size = {"box": [a, b, c], "cylinder": [a, c], "sphere": [a]}[shape]
        xy = place(_footprint_radius(shape, size))
        if xy is None:
            continue
        colour, rgb = _colour(rng, used_colours)
        half_height = size[-1] if shape != "sphere" else size[0]
        volume = {"box": 8 * a * b * c, "cylinder": 2 * np.pi * a * a * c, "sphere": 4 / 3 * np.pi * a**3}[shape]
        objects.append(
            ObjectSpec(f"{colour} {shape}", shape, [round(s, 5) for s in size], [*map(float, xy), half_height],
                       _uniform(rng, (-np.pi, np.pi)), rgb, float(volume * _uniform(rng, config.density)),
                       _uniform(rng, config.friction))
        )

    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = np.deg2rad(_uniform(rng, config.camera_elevation_deg))
    distance = _uniform(rng, config.camera_distance)
    target = np.array([*rng.uniform(-config.camera_target_jitter, config.camera_target_jitter, 2), 0.0])
    eye = target + distance * np.array(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
    )
    table = [list(np.round(rng.uniform(0.25, 0.75, 3), 4)) for _ in range(2)]
    return SceneSpec(
        objects=objects,
        articulated=articulated,
        pusher_radius=_uniform(rng, config.pusher_radius),
        table_rgb=[[float(v) for v in rgb] for rgb in table],
        camera_to_world=look_at(eye, target).tolist(),
        fovy_deg=_uniform(rng, config.camera_fovy_deg),
        image_size=tuple(config.image_size),
    )


def _quat_yaw(yaw: float) -> str:
    return f"{np.cos(yaw / 2):.6f} 0 0 {np.sin(yaw / 2):.6f}"


def _vec(values) -> str:
    return " ".join(f"{float(v):.6f}" for v in values)


def _object_xml(obj: ObjectSpec) -> str:
    # condim 6 enables rolling friction, so a pushed sphere slows down instead of rolling
    # out of the scene.
    return (
        f'<body name="{obj.name}" pos="{_vec(obj.position)}" quat="{_quat_yaw(obj.yaw)}"><freejoint/>'
        f'<geom type="{obj.shape}" size="{_vec(obj.size)}" rgba="{_vec(obj.rgb)} 1" mass="{obj.mass:.6f}" '
        f'friction="{obj.friction:.4f} 0.005 0.003" condim="6" contype="{OBJECT_BITS}" conaffinity="{OBJECT_BITS}"/></body>'
    )


def _articulated_xml(art: ArticulatedSpec) -> str:
    w, h, rgb = art.width, art.height, _vec(art.rgb)
    frame_rgb = _vec(np.array(art.rgb) * 0.6)
    bits = f'contype="{OBJECT_BITS}" conaffinity="{OBJECT_BITS}"'
    if art.kind == "door":
        # A post at the body origin; the panel hangs on a vertical hinge at the post and is
        # lifted 3 mm so it never rubs on the table.
        return (
            f'<body name="{art.name} post" pos="{_vec(art.position)}" quat="{_quat_yaw(art.yaw)}">'
            f'<geom type="box" size="0.012 0.012 {h / 2 + 0.01:.5f}" pos="0 0 {h / 2 + 0.01:.5f}" rgba="{frame_rgb} 1" {bits}/>'
            f'<body name="{art.name}" pos="{DOOR_HINGE_OFFSET} 0 {h / 2 + 0.003:.5f}">'
            f'<joint name="{art.name} hinge" type="hinge" axis="0 0 1" range="-100 100" damping="0.02" ref="0"/>'
            f'<geom type="box" size="{w / 2:.5f} {DOOR_HALF_THICKNESS} {h / 2:.5f}" pos="{w / 2:.5f} 0 0" rgba="{rgb} 1" mass="0.1" {bits}/>'
            "</body></body>"
        )
    if art.kind == "drawer":
        # A cabinet whose front face is at local x = +w/2; the drawer slides along local x.
        return (
            f'<body name="{art.name} cabinet" pos="{_vec(art.position)}" quat="{_quat_yaw(art.yaw)}">'
            f'<geom type="box" size="{w / 2:.5f} {w / 2:.5f} {h / 2:.5f}" pos="0 0 {h / 2:.5f}" rgba="{frame_rgb} 1" {bits}/>'
            f'<body name="{art.name}" pos="0 0 {h / 2 + 0.002:.5f}">'
            f'<joint name="{art.name} slide" type="slide" axis="1 0 0" range="0 {0.8 * w:.5f}" damping="2"/>'
            f'<geom type="box" size="{w / 2 - 0.004:.5f} {w / 2 - 0.01:.5f} {h / 2 - 0.012:.5f}" pos="0.002 0 0" '
            f'rgba="{rgb} 1" mass="0.2" {bits}/>'
            f'<geom type="box" size="0.006 {w / 2 - 0.004:.5f} {h / 2 - 0.004:.5f}" pos="{w / 2:.5f} 0 0" rgba="{rgb} 1" mass="0.05" {bits}/>'
            "</body></body>"
        )
    raise ValueError(f"articulated kind: expected 'door' or 'drawer', got {art.kind!r}")


def build_mjcf(spec: SceneSpec, timestep: float = 0.004) -> str:
    """MJCF text of the scene. The pusher is a body on x/y slide joints pulled by a soft weld to
    a mocap target, so scripts move it kinematically while it still collides physically."""
    height, width = spec.image_size
    pose = np.array(spec.camera_to_world)
    # MuJoCo cameras look along -z with y up; our OpenCV pose has x right, y down, z forward.
    xyaxes = _vec([*pose[:3, 0], *(-pose[:3, 1])])
    z_pusher = 0.045
    r = spec.pusher_radius
    bodies = "".join(_object_xml(o) for o in spec.objects) + "".join(_articulated_xml(a) for a in spec.articulated)
    return f"""<mujoco model="tabletop">
<option timestep="{timestep}" integrator="implicitfast"/>
<visual><quality shadowsize="0"/><global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
<headlight ambient="0.35 0.35 0.35" diffuse="0.5 0.5 0.5"/></visual>
<asset><texture name="table" type="2d" builtin="checker" rgb1="{_vec(spec.table_rgb[0])}" rgb2="{_vec(spec.table_rgb[1])}"
 width="256" height="256" mark="random" random="0.05" markrgb="1 1 1"/>
<material name="table" texture="table" texrepeat="48 48" reflectance="0"/></asset>
<worldbody>
<light directional="true" pos="0.3 0.2 2" dir="-0.15 -0.1 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
<geom name="table" type="plane" size="{TABLE_HALF_SIZE} {TABLE_HALF_SIZE} 0.1" material="table" contype="{TABLE_BITS}" conaffinity="{TABLE_BITS}"/>
<camera name="{CAMERA_NAME}" pos="{_vec(pose[:3, 3])}" xyaxes="{xyaxes}" fovy="{spec.fovy_deg:.6f}"/>
<body name="{PUSHER_TARGET_BODY}" mocap="true" pos="0 0 {z_pusher}"/>
<body name="{PUSHER_BODY}" pos="0 0 {z_pusher}">
<joint name="pusher x" type="slide" axis="1 0 0"/><joint name="pusher y" type="slide" axis="0 1 0"/>
<geom type="cylinder" size="{r:.5f} 0.04" rgba="0.55 0.55 0.6 1" mass="0.5" contype="{PUSHER_BITS}" conaffinity="{PUSHER_BITS}"/>
<geom type="sphere" size="{r * 0.8:.5f}" pos="0 0 0.04" rgba="0.9 0.9 0.95 1" mass="0.01" contype="0" conaffinity="0"/>
</body>
{bodies}
</worldbody>
<equality><weld body1="{PUSHER_TARGET_BODY}" body2="{PUSHER_BODY}" solref="0.01 1"/></equality>
</mujoco>"""
