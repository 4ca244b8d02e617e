"""Throughput and latency of motion_prior_node fed by sim_camera_node, as in sim_demo.launch.xml.

    .venv/bin/python benchmarks/bench_ros_node.py [--model default] [--seconds 30] [--backend torch]
        [--num-samples 16] [--grid-size 8] [--rate 16]

Starts both nodes as their own processes (as ros2 launch would) in a private DDS domain on
localhost: the simulated camera publishes 256 px frames, CameraInfo and the pusher's action at
16 Hz; the node samples 16 futures of an 8 x 8 grid (64 query points) over the 64-frame horizon
as fast as it can (max_rate 0), with the action's poke and guidance 2. After `--warmup`
predictions, this script listens for `--seconds` and prints JSON: predictions per second, the
latency from image stamp to the futures' arrival here and the node's own stamp-to-publication
latency (median, p90), the node's sampling time split into its parts, the frame counters and
the machine, and the node process's peak resident memory (`VmHWM`). `--num-samples`,
`--grid-size` and `--rate` (camera frames per second) set the load, e.g. the largest sizes the
node's parameters allow together at 30 Hz. Timings on a shared machine drift; say so when
quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=3, help="predictions ignored at the start")
    parser.add_argument("--num-samples", type=int, default=16, help="the node's num_samples (default 16)")
    parser.add_argument("--grid-size", type=int, default=8, help="the node's grid_size (default 8)")
    parser.add_argument("--rate", type=float, default=16.0, help="camera frames per second (default 16)")
    args = parser.parse_args()
    # Before rclpy is imported: this run's own domain, on localhost only.
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    node_command = [sys.executable, "-m", "ros_nodes.motion_prior_node", "--ros-args",
                    "--params-file", str(ROOT / "config" / "motion_prior.yaml"),
                    "-p", f"model:={args.model}", "-p", f"backend:={args.backend}", "-p", f"device:={args.device}",
                    "-p", f"num_samples:={args.num_samples}", "-p", f"grid_size:={args.grid_size}", "-p", "max_rate:=0.0",
                    "-p", "image_reliability:=reliable"]
    camera_command = [sys.executable, "-m", "ros_nodes.sim_camera_node", "--ros-args",
                      "--params-file", str(ROOT / "config" / "sim_demo.yaml"), "-p", f"rate:={args.rate}"]
    processes = [subprocess.Popen(command, cwd=ROOT) for command in (node_command, camera_command)]
    try:
        result = listen(args.seconds, args.warmup)
        status = Path(f"/proc/{processes[0].pid}/status").read_text()
        result["node_peak_rss_mib"] = round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    result.update(command=" ".join([Path(sys.executable).name, *sys.argv]), model=args.model, backend=args.backend,
                  device=args.device, num_samples=args.num_samples, query_points=args.grid_size ** 2, camera_hz=args.rate,
                  machine=platform.processor() or platform.machine(), cpu_count=os.cpu_count())
    print(json.dumps(result, indent=1))


def listen(seconds: float, warmup: int) -> dict:
    """Receive futures and diagnostics for `seconds` after `warmup` predictions; summarise."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.time import Time
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("bench_ros_node")
    arrivals: list[tuple[float, float]] = []  # (monotonic arrival, stamp-to-arrival seconds)
    reported: list[dict[str, str]] = []

    def on_futures(message: PointCloud2) -> None:
        latency = (node.get_clock().now() - Time.from_msg(message.header.stamp)).nanoseconds / 1e9
        arrivals.append((time.monotonic(), latency))

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            if status.name.startswith("/motion_prior_node:"):
                reported.append({pair.key: pair.value for pair in status.values})

    node.create_subscription(PointCloud2, "/motion_prior_node/futures", on_futures, 10)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + 300
    while len(arrivals) < warmup and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    if len(arrivals) < warmup:
        raise RuntimeError("no futures within 300 s: did both nodes start?")
    start, first = time.monotonic(), len(arrivals)
    while time.monotonic() - start < seconds:
        executor.spin_once(timeout_sec=0.1)
    measured = arrivals[first:]
    node_latencies = [float(r["latency_last_ms"]) for r in reported[-int(seconds):] if "latency_last_ms" in r]
    last = reported[-1]
    node.destroy_node()
    rclpy.shutdown()
    received = np.array([latency for _, latency in measured]) * 1000
    return {
        "predictions_per_s": round(len(measured) / (time.monotonic() - start), 3),
        "stamp_to_arrival_ms": {"median": round(float(np.median(received)), 1),
                                "p90": round(float(np.percentile(received, 90)), 1)},
        "stamp_to_publication_ms (node)": {"median": round(float(np.median(node_latencies)), 1),
                                           "p90": round(float(np.percentile(node_latencies, 90)), 1)},
        "last_prediction_sampling_ms": {k.removeprefix("sample_").removesuffix("_ms"): float(v)
                                        for k, v in last.items() if k.startswith("sample_")},
        "pokes_in_last_prediction": int(last["pokes"]),
        "frames": {k: int(last[k]) for k in ("frames_received", "frames_dropped", "frames_rejected", "predictions")},
    }


if __name__ == "__main__":
    main()
